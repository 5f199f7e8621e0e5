//! GPU compute for AITBC: a wgpu executor with WGSL kernels, each with a CPU reference.
//!
//! - [`info`] describes the adapter this machine would sell ([`AdapterReport`]).
//! - [`Executor`] owns one device per process on a worker thread, caches pipelines, pools buffers,
//!   enforces [`JobLimits`] before anything runs, times jobs out and recreates lost devices.
//! - Kernels: [`kernels::matmul`], [`kernels::sha256`] (batch and proof of work),
//!   [`kernels::mlp`] and [`kernels::wgsl`] (a client's own shader, validated and made to
//!   terminate).
//! - [`bench::run`] measures every kernel against its CPU reference.
//!
//! Without a GPU, the software Vulkan driver (`apt-get install mesa-vulkan-drivers libvulkan1`)
//! gives a correct, slow adapter.
//!
//! ```no_run
//! use gpu::{Executor, JobLimits, kernels::matmul::Matmul};
//!
//! let exec = Executor::global()?;
//! println!("{}", exec.adapter());
//! let c = exec.matmul(
//!     Matmul { m: 1, k: 2, n: 1, a: vec![1.0, 2.0], b: vec![3.0, 4.0] },
//!     &JobLimits::default(),
//! )?;
//! assert_eq!(c, vec![11.0]);
//! # Ok::<(), gpu::GpuError>(())
//! ```
#![warn(missing_docs)]

pub mod adapter;
pub mod bench;
mod device;
pub mod error;
pub mod executor;
pub mod kernels;
pub mod limits;

pub use adapter::{AdapterLimits, AdapterReport};
pub use error::{GpuError, LimitKind};
pub use executor::{Executor, ExecutorStats, Job, JobHandle, JobOutput};
pub use limits::JobLimits;

/// Describes the adapter this process would use (a real GPU when there is one, discrete first;
/// else the software Vulkan adapter). Creates no device.
pub fn info() -> Result<AdapterReport, GpuError> {
    adapter::probe()
}
