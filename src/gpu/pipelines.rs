//! The compute-pipeline cache: one compiled pipeline per (shader, entry point, specialisation
//! constants), and one shader module per shader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Identifies a compute pipeline: which WGSL source, which entry point, and the values of its
/// `override` constants (sorted by name so that equal sets compare equal).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The shader (`crate::shaders`; compared and hashed by name).
    pub shader: &'static crate::shaders::Shader,
    /// WGSL entry point.
    pub entry: &'static str,
    /// Override constants as (name, f64 bit pattern), sorted by name.
    constants: Vec<(&'static str, u64)>,
}

impl PipelineKey {
    /// A key with no override constants.
    pub fn new(shader: &'static crate::shaders::Shader, entry: &'static str) -> Self {
        PipelineKey {
            shader,
            entry,
            constants: Vec::new(),
        }
    }

    /// Add (or replace) an override constant.
    pub fn with_constant(mut self, name: &'static str, value: f64) -> Self {
        self.constants.retain(|(n, _)| *n != name);
        self.constants.push((name, value.to_bits()));
        crate::sort::sort_stable_by_key(&mut self.constants, |(n, _)| *n);
        self
    }

    fn constants(&self) -> Vec<(&'static str, f64)> {
        self.constants
            .iter()
            .map(|(n, bits)| (*n, f64::from_bits(*bits)))
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    pub(crate) fn len(&self) -> usize {
        self.pipelines.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub(crate) fn get_or_create(
        &self,
        device: &wgpu::Device,
        key: &PipelineKey,
    ) -> Arc<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.lock().ok().and_then(|m| m.get(key).cloned()) {
            return p;
        }
        let module = self.module(device, key.shader);
        let constants = key.constants();
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key.entry),
                layout: None,
                module: &module,
                entry_point: Some(key.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: true,
                },
                cache: None,
            }),
        );
        if let Ok(mut m) = self.pipelines.lock() {
            m.insert(key.clone(), pipeline.clone());
        }
        pipeline
    }

    fn module(
        &self,
        device: &wgpu::Device,
        shader: &'static crate::shaders::Shader,
    ) -> Arc<wgpu::ShaderModule> {
        if let Some(m) = self
            .modules
            .lock()
            .ok()
            .and_then(|m| m.get(shader.name).cloned())
        {
            return m;
        }
        let module = Arc::new(device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.source.into()),
        }));
        if let Ok(mut m) = self.modules.lock() {
            m.insert(shader.name, module.clone());
        }
        module
    }
}
