//! Adapter selection and the report the marketplace advertises.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{GpuError, Result};

/// The adapter limits that matter to compute jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterLimits {
    /// Largest buffer the adapter can create, in bytes.
    pub max_buffer_size: u64,
    /// Largest storage buffer binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup memory, in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Workgroup size per dimension.
    pub max_compute_workgroup_size: [u32; 3],
}

impl AdapterLimits {
    pub(crate) fn from_wgpu(l: &wgpu::Limits) -> Self {
        AdapterLimits {
            max_buffer_size: l.max_buffer_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_workgroup_size: [
                l.max_compute_workgroup_size_x,
                l.max_compute_workgroup_size_y,
                l.max_compute_workgroup_size_z,
            ],
        }
    }
}

/// What the executor runs on, as advertised to buyers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// Adapter name, e.g. `NVIDIA H100 80GB HBM3` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Graphics API, e.g. `Vulkan`.
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name.
    pub driver: String,
    /// Driver version / description.
    pub driver_info: String,
    /// PCI vendor id.
    pub vendor_id: u32,
    /// PCI device id.
    pub device_id: u32,
    /// True for a software rasteriser (lavapipe / llvmpipe): correct, not fast.
    pub software: bool,
    /// Limits relevant to compute.
    pub limits: AdapterLimits,
}

impl AdapterReport {
    /// No adapter in particular: the limits every WebGPU adapter offers (wgpu's defaults). A
    /// job that fits them runs on any conforming GPU; a node checks clients' shaders against
    /// them, whatever its own adapter.
    pub fn portable() -> Self {
        AdapterReport {
            name: "any WebGPU adapter (default limits)".into(),
            backend: String::new(),
            device_type: String::new(),
            driver: String::new(),
            driver_info: String::new(),
            vendor_id: 0,
            device_id: 0,
            software: false,
            limits: AdapterLimits::from_wgpu(&wgpu::Limits::default()),
        }
    }

    pub(crate) fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterReport {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            vendor_id: info.vendor,
            device_id: info.device,
            software: info.device_type == wgpu::DeviceType::Cpu,
            limits: AdapterLimits::from_wgpu(&adapter.limits()),
        }
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        writeln!(f, "adapter      {}", self.name)?;
        writeln!(f, "backend      {}", self.backend)?;
        writeln!(
            f,
            "type         {}{}",
            self.device_type,
            if self.software { " (software)" } else { "" }
        )?;
        writeln!(f, "driver       {} {}", self.driver, self.driver_info)?;
        writeln!(
            f,
            "ids          vendor {:#06x} device {:#06x}",
            self.vendor_id, self.device_id
        )?;
        writeln!(f, "max buffer   {} bytes", l.max_buffer_size)?;
        writeln!(
            f,
            "max binding  {} bytes (storage), {} storage buffers per stage",
            l.max_storage_buffer_binding_size, l.max_storage_buffers_per_shader_stage
        )?;
        writeln!(
            f,
            "workgroups   {} per dimension, {} invocations, size {:?}",
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_size
        )?;
        write!(
            f,
            "shared mem   {} bytes per workgroup",
            l.max_compute_workgroup_storage_size
        )
    }
}

pub(crate) fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::GL;
    wgpu::Instance::new(desc)
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal | wgpu::Backend::Dx12 => 1,
        _ => 2,
    }
}

/// Picks the best compute-capable adapter: a discrete GPU first, the software Vulkan one last.
pub(crate) fn select_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter> {
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .min_by_key(|a| {
            let info = a.get_info();
            (type_rank(info.device_type), backend_rank(info.backend))
        })
        .ok_or(GpuError::NoAdapter)
}

/// Describes the adapter this process would use, without creating a device.
pub fn probe() -> Result<AdapterReport> {
    let instance = new_instance();
    let adapter = select_adapter(&instance)?;
    Ok(AdapterReport::from_adapter(&adapter))
}
