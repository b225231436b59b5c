//! Linear recurrence kernels (linear attention, decayed, GLA, delta rule, gated delta rule) in recurrent and chunked forms.
