//! JS bindings of the episodic store.
