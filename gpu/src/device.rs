//! One wgpu device with its pipeline cache and buffer pool. Owned by the executor's worker thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::adapter::{self, AdapterReport};
use crate::error::{GpuError, Result};
use crate::limits::{CLIENT_PIPELINES_MAX, POOL_BYTES_MAX};

/// How a kernel binds one resource (binding i of group 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Binding {
    ReadOnly,
    ReadWrite,
    Uniform,
}

/// A compiled pipeline and the layout its bind groups are built against.
pub(crate) struct Kernel {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Buffers above this size are not pooled (rounding them up would waste too much).
const POOLED_BYTES_MAX: u64 = 16 << 20;
/// Buffers of one size class kept in the pool.
const POOL_PER_CLASS_MAX: usize = 4;

#[derive(Default)]
struct BufferPool {
    free: HashMap<(u64, u32), Vec<wgpu::Buffer>>,
    bytes: u64,
    hits: u64,
}

/// A buffer taken from the pool (or made for the job) and the size the job asked for.
pub(crate) struct Buf {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) size: u64,
}

impl Buf {
    /// A binding of exactly the requested size (pooled buffers may be larger).
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: 0,
            size: wgpu::BufferSize::new(self.size),
        })
    }
}

/// Per-job context: deadline and wall-time limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) limit_ms: u64,
}

impl Deadline {
    pub(crate) fn check(&self) -> Result<()> {
        if Instant::now() >= self.at {
            return Err(GpuError::TimedOut {
                limit_ms: self.limit_ms,
            });
        }
        Ok(())
    }
}

/// The device, its queue, compiled kernels and pooled buffers.
pub(crate) struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) report: AdapterReport,
    lost: Arc<AtomicBool>,
    lost_reason: Arc<Mutex<String>>,
    kernels: HashMap<&'static str, Arc<Kernel>>,
    client_kernels: HashMap<[u8; 32], Arc<Kernel>>,
    pool: BufferPool,
    pub(crate) pipelines_compiled: u64,
}

impl Gpu {
    /// Selects the adapter and creates a device with the adapter's own limits.
    pub(crate) fn new() -> Result<Gpu> {
        let instance = adapter::new_instance();
        let adapter = adapter::select_adapter(&instance)?;
        let report = AdapterReport::from_adapter(&adapter);
        let desc = wgpu::DeviceDescriptor {
            label: Some("aitbc-gpu"),
            required_features: wgpu::Features::empty(),
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::DeviceCreation {
                adapter: report.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let lost = Arc::new(AtomicBool::new(false));
        let lost_reason = Arc::new(Mutex::new(String::new()));
        {
            let lost = Arc::clone(&lost);
            let lost_reason = Arc::clone(&lost_reason);
            device.set_device_lost_callback(move |reason, message| {
                tracing::warn!(?reason, %message, "GPU device lost");
                if let Ok(mut r) = lost_reason.lock() {
                    *r = format!("{reason:?}: {message}");
                }
                lost.store(true, Ordering::SeqCst);
            });
        }
        // Errors are caught by error scopes around each job; anything that escapes is logged, not
        // turned into a panic (wgpu's default handler panics).
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            tracing::error!(error = %e, "uncaptured wgpu error");
        }));
        tracing::info!(adapter = %report.name, backend = %report.backend, "GPU device created");
        Ok(Gpu {
            device,
            queue,
            report,
            lost,
            lost_reason,
            kernels: HashMap::new(),
            client_kernels: HashMap::new(),
            pool: BufferPool::default(),
            pipelines_compiled: 0,
        })
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub(crate) fn lost_reason(&self) -> String {
        self.lost_reason
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Destroys the device (fault injection / forced reset); the next job gets a fresh one.
    pub(crate) fn destroy(&self) {
        self.device.destroy();
        self.lost.store(true, Ordering::SeqCst);
    }

    pub(crate) fn pool_hits(&self) -> u64 {
        self.pool.hits
    }

    fn build_kernel(
        &mut self,
        label: &str,
        source: wgpu::ShaderSource<'_>,
        entry: &str,
        bindings: &[Binding],
    ) -> Kernel {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source,
            });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
                        Binding::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.pipelines_compiled += 1;
        Kernel { pipeline, layout }
    }

    /// One of this crate's kernels, compiled on first use and cached for the device's lifetime.
    pub(crate) fn kernel(
        &mut self,
        name: &'static str,
        source: &str,
        entry: &str,
        bindings: &[Binding],
    ) -> Arc<Kernel> {
        if let Some(k) = self.kernels.get(name) {
            return Arc::clone(k);
        }
        let k = Arc::new(self.build_kernel(
            name,
            wgpu::ShaderSource::Wgsl(source.to_owned().into()),
            entry,
            bindings,
        ));
        self.kernels.insert(name, Arc::clone(&k));
        k
    }

    /// A client kernel from a validated, instrumented naga module, cached under `key`.
    /// wgpu errors while compiling become [`GpuError::ShaderRejected`].
    pub(crate) fn client_kernel(
        &mut self,
        key: [u8; 32],
        module: &naga::Module,
        entry: &str,
        bindings: &[Binding],
    ) -> Result<Arc<Kernel>> {
        if let Some(k) = self.client_kernels.get(&key) {
            return Ok(Arc::clone(k));
        }
        if self.client_kernels.len() >= CLIENT_PIPELINES_MAX {
            self.client_kernels.clear();
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let k = self.build_kernel(
            "client",
            wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(module.clone())),
            entry,
            bindings,
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::ShaderRejected {
                line: None,
                message: e.to_string(),
            });
        }
        let k = Arc::new(k);
        self.client_kernels.insert(key, Arc::clone(&k));
        Ok(k)
    }

    /// A buffer of at least `size` bytes (a multiple of 4) for `usage`, from the pool when one fits.
    pub(crate) fn buffer(&mut self, size: u64, usage: wgpu::BufferUsages) -> Buf {
        let size = size.max(4);
        let class = if size <= POOLED_BYTES_MAX {
            size.next_power_of_two().max(256)
        } else {
            size
        };
        if let Some(buffer) = self
            .pool
            .free
            .get_mut(&(class, usage.bits()))
            .and_then(Vec::pop)
        {
            self.pool.bytes -= class;
            self.pool.hits += 1;
            return Buf { buffer, size };
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: class,
            usage,
            mapped_at_creation: false,
        });
        Buf { buffer, size }
    }

    /// Storage buffer (read by shaders, copy source and destination) holding `data`.
    pub(crate) fn storage_with(&mut self, data: &[u8]) -> Buf {
        let b = self.buffer(padded_len(data.len()), storage_usage());
        self.write(&b, data);
        b
    }

    /// Writes `data` at offset 0, zero-padded to a multiple of 4.
    pub(crate) fn write(&self, buf: &Buf, data: &[u8]) {
        if data.len().is_multiple_of(4) {
            self.queue.write_buffer(&buf.buffer, 0, data);
        } else {
            let mut v = data.to_vec();
            v.resize(padded_len(data.len()) as usize, 0);
            self.queue.write_buffer(&buf.buffer, 0, &v);
        }
    }

    /// Returns buffers to the pool once the job that used them has completed.
    pub(crate) fn recycle(&mut self, bufs: impl IntoIterator<Item = Buf>) {
        for b in bufs {
            let class = b.buffer.size();
            if class > POOLED_BYTES_MAX || self.pool.bytes + class > POOL_BYTES_MAX {
                continue;
            }
            let slot = self
                .pool
                .free
                .entry((class, b.buffer.usage().bits()))
                .or_default();
            if slot.len() < POOL_PER_CLASS_MAX {
                slot.push(b.buffer);
                self.pool.bytes += class;
            }
        }
    }

    /// Bind group of `bufs` (binding i = bufs[i]) for `kernel`.
    pub(crate) fn bind_group(&self, kernel: &Kernel, bufs: &[&Buf]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        })
    }

    /// Submits `encoder` and waits for it, up to the deadline.
    pub(crate) fn submit_wait(
        &self,
        encoder: wgpu::CommandEncoder,
        deadline: &Deadline,
    ) -> Result<()> {
        deadline.check()?;
        let index = self.queue.submit([encoder.finish()]);
        self.wait(Some(index), deadline)
    }

    fn wait(&self, index: Option<wgpu::SubmissionIndex>, deadline: &Deadline) -> Result<()> {
        let remaining = deadline.at.saturating_duration_since(Instant::now());
        match self.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: Some(remaining),
        }) {
            Ok(_) => {}
            Err(wgpu::PollError::Timeout) => {
                return Err(GpuError::TimedOut {
                    limit_ms: deadline.limit_ms,
                });
            }
            Err(e) => return Err(GpuError::DeviceLost(e.to_string())),
        }
        if self.is_lost() {
            return Err(GpuError::DeviceLost(self.lost_reason()));
        }
        Ok(())
    }

    /// A staging buffer for reading `size` bytes back.
    pub(crate) fn staging(&mut self, size: u64) -> Buf {
        self.buffer(
            size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Maps a staging buffer whose copy has completed and returns its first `size` bytes.
    pub(crate) fn read(&self, staging: &Buf, deadline: &Deadline) -> Result<Vec<u8>> {
        let size = padded_len(staging.size as usize);
        let slot: Arc<Mutex<Option<std::result::Result<(), wgpu::BufferAsyncError>>>> =
            Arc::new(Mutex::new(None));
        {
            let slot = Arc::clone(&slot);
            staging
                .buffer
                .map_async(wgpu::MapMode::Read, 0..size, move |r| {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(r);
                    }
                });
        }
        self.wait(None, deadline)?;
        let outcome = slot.lock().ok().and_then(|mut s| s.take());
        match outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(GpuError::DeviceLost(format!("buffer map failed: {e}"))),
            None => return Err(GpuError::Backend("buffer map did not complete".into())),
        }
        let bytes = {
            let view = staging
                .buffer
                .get_mapped_range(0..size)
                .map_err(|e| GpuError::Backend(e.to_string()))?;
            view[..staging.size as usize].to_vec()
        };
        staging.buffer.unmap();
        Ok(bytes)
    }

    /// A uniform buffer holding `data`.
    pub(crate) fn uniform_with(&mut self, data: &[u8]) -> Buf {
        let b = self.buffer(
            padded_len(data.len()),
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        self.write(&b, data);
        b
    }
}

/// Usage of every storage buffer of this crate.
pub(crate) fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC
}

/// `len` rounded up to a multiple of 4 (wgpu's copy alignment), at least 4.
pub(crate) fn padded_len(len: usize) -> u64 {
    ((len as u64).max(1)).div_ceil(4) * 4
}

/// A command encoder with one compute pass running `kernel` over `groups` workgroups.
pub(crate) fn dispatch(
    encoder: &mut wgpu::CommandEncoder,
    kernel: &Kernel,
    bind_group: &wgpu::BindGroup,
    groups: [u32; 3],
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    pass.set_pipeline(&kernel.pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
}

impl Gpu {
    pub(crate) fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }
}
