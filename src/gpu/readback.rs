//! Readback: copy a GPU buffer into a mappable staging buffer and await the map, natively by
//! polling the device and in the browser through `mapAsync` (the callback resolves a channel).

use super::{GpuContext, GpuError};

impl GpuContext {
    /// Append a copy of the first `size` bytes of `src` to `encoder`, submit it, and return the
    /// bytes. One submission for the kernel and its readback.
    pub async fn submit_and_read(
        &self,
        mut encoder: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        size: u64,
    ) -> Result<Vec<u8>, GpuError> {
        self.check_alive()?;
        let padded = size.max(4).next_multiple_of(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mnemo-readback"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, padded);
        self.queue.submit([encoder.finish()]);
        self.map_read(&staging, size).await
    }

    /// Submit `encoder` without reading anything back.
    pub fn submit(&self, encoder: wgpu::CommandEncoder) {
        self.queue.submit([encoder.finish()]);
    }

    /// Map a `MAP_READ` buffer and copy out its first `size` bytes.
    pub async fn map_read(&self, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| match self.check_alive() {
                Err(lost) => lost,
                Ok(()) => GpuError::Readback(e.to_string()),
            })?;
        let mapped = match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self
                .check_alive()
                .err()
                .unwrap_or(GpuError::Readback(e.to_string()))),
            Err(_) => Err(self
                .check_alive()
                .err()
                .unwrap_or(GpuError::Readback("map callback dropped".into()))),
        };
        mapped?;
        let bytes = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            view[..size as usize].to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }
}
