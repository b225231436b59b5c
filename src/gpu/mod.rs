//! The GPU runtime: adapter and device acquisition, a pipeline cache, buffer upload and
//! readback, error scopes and device-lost tracking, over wgpu.
//!
//! The same code runs natively (wgpu on Vulkan; Mesa lavapipe in CI) and in the browser
//! (wgpu's WebGPU backend over `navigator.gpu`). Nothing here knows about `JsValue`; kernels in
//! `crate::kernels` build on [`GpuContext`] and never talk to wgpu's instance or adapter directly.

mod error;
mod pipelines;
mod readback;

pub use error::GpuError;
pub use pipelines::PipelineKey;

use std::sync::{Arc, Mutex};

use pipelines::PipelineCache;

/// What the adapter says about itself, kept after device creation so callers (and tests) can
/// see which hardware or software implementation ran a kernel.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdapterSummary {
    /// Adapter name (`llvmpipe (LLVM ...)` for lavapipe; the WebGPU `description` or
    /// `architecture` in a browser, which may be empty when the browser hides it).
    pub name: String,
    /// The graphics API under wgpu: `vulkan` natively, `webgpu` in the browser.
    pub api: String,
    /// `cpu` for software adapters (lavapipe, SwiftShader), `discrete-gpu`, `integrated-gpu`...
    pub device_type: String,
    /// Driver name and version where the platform reports them.
    pub driver: String,
    /// PCI vendor id (0 where unknown).
    pub vendor: u32,
}

impl AdapterSummary {
    fn from_info(info: &wgpu::AdapterInfo) -> Self {
        let device_type = match info.device_type {
            wgpu::DeviceType::Other => "other",
            wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
            wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
            wgpu::DeviceType::VirtualGpu => "virtual-gpu",
            wgpu::DeviceType::Cpu => "cpu",
        };
        let api = match info.backend {
            wgpu::Backend::Vulkan => "vulkan",
            wgpu::Backend::Metal => "metal",
            wgpu::Backend::Dx12 => "dx12",
            wgpu::Backend::Gl => "gl",
            wgpu::Backend::BrowserWebGpu => "webgpu",
            _ => "other",
        };
        let driver = [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        AdapterSummary {
            name: info.name.clone(),
            api: api.to_string(),
            device_type: device_type.to_string(),
            driver,
            vendor: info.vendor,
        }
    }
}

/// A live device with its queue, pipeline cache and health flags.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct GpuContext {
    id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: AdapterSummary,
    limits: wgpu::Limits,
    pipelines: PipelineCache,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info)
            .finish_non_exhaustive()
    }
}

/// The limits mnemo asks for: the WebGPU defaults, with the buffer-size limits raised up to what
/// the adapter offers (memory banks are large; everything else stays at the portable default so
/// that a kernel that works here works on every WebGPU device).
pub fn required_limits(adapter: &wgpu::Limits) -> wgpu::Limits {
    let defaults = wgpu::Limits::default();
    wgpu::Limits {
        max_storage_buffer_binding_size: adapter.max_storage_buffer_binding_size,
        max_buffer_size: adapter.max_buffer_size,
        ..defaults
    }
}

impl GpuContext {
    /// Acquire an adapter and a device. Natively this enumerates Vulkan adapters; in the
    /// browser it asks `navigator.gpu` (in a page or a worker).
    pub async fn acquire() -> Result<GpuContext, GpuError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = if cfg!(target_arch = "wasm32") {
            wgpu::Backends::BROWSER_WEBGPU
        } else {
            wgpu::Backends::VULKAN
        };
        if !cfg!(target_arch = "wasm32")
            && !wgpu::Instance::enabled_backend_features().contains(desc.backends)
        {
            return Err(GpuError::NoAdapter(
                "wgpu was built without the Vulkan backend".into(),
            ));
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        #[cfg_attr(not(target_arch = "wasm32"), allow(unused_mut))]
        let mut info = AdapterSummary::from_info(&adapter.get_info());
        let limits = required_limits(&adapter.limits());
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("mnemo"),
                required_features: wgpu::Features::empty(),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;

        #[cfg(target_arch = "wasm32")]
        browser_adapter_name(&device, &mut info);

        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_flag.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        // wgpu's default handler panics; record instead, and report at the next scope pop.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(err.to_string());
            }
        }));

        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(GpuContext {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            device,
            queue,
            info,
            limits,
            pipelines: PipelineCache::default(),
            lost,
            uncaptured,
        })
    }

    /// A number unique to this context in the process (for callers that keep their own
    /// resources on one device, e.g. the text encoder's resident weights).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The wgpu device (for callers that keep kernel outputs on the GPU).
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The device's queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// What the adapter reported about itself.
    pub fn adapter_info(&self) -> &AdapterSummary {
        &self.info
    }

    /// The limits the device was created with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// `Err(DeviceLost)` once the device has been lost; kernels call this before any work.
    pub fn check_alive(&self) -> Result<(), GpuError> {
        match self.lost.lock().ok().and_then(|g| g.clone()) {
            Some(reason) => Err(GpuError::DeviceLost(reason)),
            None => Ok(()),
        }
    }

    /// Destroy the device (for tests of the device-lost path, and for explicit teardown).
    pub fn destroy(&self) {
        if let Ok(mut slot) = self.lost.lock() {
            slot.get_or_insert_with(|| "Destroyed: destroy() was called".to_string());
        }
        self.device.destroy();
    }

    /// Errors that escaped every error scope since the last call (normally none).
    pub fn take_uncaptured_errors(&self) -> Vec<String> {
        self.uncaptured
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Open validation + out-of-memory + internal error scopes; close them with
    /// [`ErrorScope::finish`] after the work is submitted.
    pub fn error_scope(&self) -> ErrorScope {
        ErrorScope {
            internal: self.device.push_error_scope(wgpu::ErrorFilter::Internal),
            oom: self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory),
            validation: self.device.push_error_scope(wgpu::ErrorFilter::Validation),
        }
    }

    /// The cached compute pipeline for `key`, compiling it on first use.
    pub fn pipeline(&self, key: &PipelineKey) -> Arc<wgpu::ComputePipeline> {
        self.pipelines.get_or_create(&self.device, key)
    }

    /// Number of distinct pipelines compiled so far (observable for tests of the cache).
    pub fn pipeline_count(&self) -> usize {
        self.pipelines.len()
    }

    /// A bind group for group 0 of `pipeline` from (binding, buffer) pairs, each buffer bound
    /// whole.
    pub fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        label: &str,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .map(|(binding, buf)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buf.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// [`Self::bind_group`] with the buffers at bindings 0, 1, 2, … in order.
    pub fn bind_buffers(
        &self,
        pipeline: &wgpu::ComputePipeline,
        label: &str,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<(u32, &wgpu::Buffer)> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32, *b))
            .collect();
        self.bind_group(pipeline, label, &entries)
    }

    /// A storage buffer holding `data` (at least 4 bytes: WebGPU rejects empty bindings).
    ///
    /// Written through the queue rather than mapped at creation, so that a lost device yields an
    /// error at readback instead of a failed mapping.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.write(&buffer, 0, bytes);
        buffer
    }

    /// Write `bytes` at `offset` of `buffer` through the queue (the tail is zero-padded to a
    /// multiple of 4 bytes, as WebGPU requires).
    pub fn write(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.queue.write_buffer(buffer, offset, &bytes[..whole]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue
                .write_buffer(buffer, offset + whole as u64, &tail);
        }
    }

    /// A uniform buffer holding one `T`.
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> wgpu::Buffer {
        let bytes = bytemuck::bytes_of(value);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.write(&buffer, 0, bytes);
        buffer
    }

    /// An uninitialised (zeroed) storage buffer of `size` bytes that can be copied out.
    pub fn storage(&self, label: &'static str, size: u64) -> Result<wgpu::Buffer, GpuError> {
        self.check_binding(label, size)?;
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }))
    }

    /// `Err(Limit)` when `size` bytes cannot be bound as one storage buffer on this device.
    pub fn check_binding(&self, what: &'static str, size: u64) -> Result<(), GpuError> {
        let allowed = self.limits.max_storage_buffer_binding_size;
        let allowed = allowed.min(self.limits.max_buffer_size);
        if size > allowed {
            return Err(GpuError::Limit {
                what,
                needed: size,
                allowed,
            });
        }
        Ok(())
    }

    /// Largest workgroup count per dispatch dimension.
    pub fn max_workgroups_per_dim(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }
}

/// Browsers leave `GPUAdapterInfo.description` empty for privacy, and wgpu maps only that field;
/// fill the name from `device.adapterInfo`'s vendor and architecture (e.g. "google swiftshader").
#[cfg(target_arch = "wasm32")]
fn browser_adapter_name(device: &wgpu::Device, info: &mut AdapterSummary) {
    use wasm_bindgen::JsValue;
    let Some(dev) = device.as_webgpu() else {
        return;
    };
    let dev: &JsValue = dev.as_ref();
    let Ok(ai) = js_sys::Reflect::get(dev, &JsValue::from_str("adapterInfo")) else {
        return;
    };
    let field = |k: &str| {
        js_sys::Reflect::get(&ai, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let parts: Vec<String> = [
        field("vendor"),
        field("architecture"),
        field("device"),
        field("description"),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    if info.name.is_empty() && !parts.is_empty() {
        info.name = parts.join(" ");
    }
    if info.driver.is_empty() {
        info.driver = field("description");
    }
}

/// Workgroup counts for `groups` linear workgroups folded into (x, y) so that neither exceeds
/// `max_per_dim`. Shaders recover the linear id as `wid.x + wid.y * num_workgroups.x` and return
/// when it is past the end.
pub fn fold_workgroups(groups: u32, max_per_dim: u32) -> (u32, u32) {
    if groups <= max_per_dim {
        (groups.max(1), 1)
    } else {
        let y = groups.div_ceil(max_per_dim);
        (groups.div_ceil(y), y)
    }
}

/// Error scopes around one kernel launch (see [`GpuContext::error_scope`]).
pub struct ErrorScope {
    internal: wgpu::ErrorScopeGuard,
    oom: wgpu::ErrorScopeGuard,
    validation: wgpu::ErrorScopeGuard,
}

impl ErrorScope {
    /// Pop the scopes (innermost first) and turn the first captured error into a `GpuError`.
    pub async fn finish(self, op: &str) -> Result<(), GpuError> {
        let validation = self.validation.pop().await;
        let oom = self.oom.pop().await;
        let internal = self.internal.pop().await;
        match [validation, oom, internal].into_iter().flatten().next() {
            Some(err) => Err(GpuError::from_wgpu(op, err)),
            None => Ok(()),
        }
    }
}
