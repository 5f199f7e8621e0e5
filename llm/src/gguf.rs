//! A reader of GGUF files (version 2 and 3): the header, the typed metadata, the tensor table
//! and the data section's alignment. The whole file is held in memory; tensors are borrowed
//! slices of it.
//!
//! Layout (little-endian): `GGUF`, version u32, tensor count u64, metadata count u64; each
//! metadata entry: key (u64 length + UTF-8), value type u32, value (arrays: element type u32,
//! count u64, elements); each tensor: name, dimension count u32, dimensions u64 (the first is
//! the contiguous one), ggml type u32, offset u64 from the data section; then padding to
//! `general.alignment` (default 32) and the data.

use std::collections::BTreeMap;

use crate::quant::TensorType;

/// Largest count the reader accepts for anything (keys, arrays, tensors, dimensions' product):
/// a corrupt length must fail cleanly, not allocate the machine away.
const COUNT_MAX: u64 = 1 << 32;

/// Why a file is not a usable GGUF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GgufError {
    /// Not GGUF, or a version this reader does not know.
    #[error("not a GGUF file: {0}")]
    Format(String),
    /// Cut short or inconsistent.
    #[error("GGUF file is damaged at byte {offset}: {reason}")]
    Damaged {
        /// Where.
        offset: usize,
        /// What.
        reason: String,
    },
    /// A metadata key the model needs is missing or of another type.
    #[error("GGUF metadata {0}")]
    Metadata(String),
    /// A tensor the model needs is missing or has another shape or type.
    #[error("GGUF tensor {0}")]
    Tensor(String),
}

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    Uint(u64),
    /// Any signed integer type.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// bool.
    Bool(bool),
    /// string.
    Str(String),
    /// array.
    Array(Vec<Value>),
}

/// One tensor's entry in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name.
    pub name: String,
    /// Dimensions, the contiguous one first.
    pub dims: Vec<u64>,
    /// Element type.
    pub kind: TensorType,
    /// Offset of its data from the data section's start.
    pub offset: u64,
}

impl TensorInfo {
    /// Elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF file.
pub struct Gguf {
    bytes: Vec<u8>,
    /// Format version.
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
    data_start: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn damaged(&self, reason: impl Into<String>) -> GgufError {
        GgufError::Damaged {
            offset: self.at,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.damaged(format!("{n} bytes needed, the file ends")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn count(&mut self, what: &str) -> Result<u64, GgufError> {
        let count = self.u64()?;
        if count > COUNT_MAX {
            return Err(self.damaged(format!("{what} count {count} is absurd")));
        }
        Ok(count)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.count("string length")? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.damaged("a string is not UTF-8"))
    }

    fn value(&mut self, kind: u32, depth: u32) -> Result<Value, GgufError> {
        Ok(match kind {
            0 => Value::Uint(u64::from(self.array::<1>()?[0])),
            1 => Value::Int(i64::from(self.array::<1>()?[0] as i8)),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.array()?))),
            3 => Value::Int(i64::from(i16::from_le_bytes(self.array()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => Value::Int(i64::from(i32::from_le_bytes(self.array()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => Value::Bool(self.array::<1>()?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth < 2 => {
                let element = self.u32()?;
                let count = self.count("array")?;
                let mut values = Vec::with_capacity(count.min(1 << 20) as usize);
                for _ in 0..count {
                    values.push(self.value(element, depth + 1)?);
                }
                Value::Array(values)
            }
            10 => Value::Uint(self.u64()?),
            11 => Value::Int(i64::from_le_bytes(self.array()?)),
            12 => Value::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(self.damaged(format!("unknown value type {other}"))),
        })
    }
}

impl Gguf {
    /// Reads the file at `path`.
    pub fn open(path: &std::path::Path) -> Result<Gguf, GgufError> {
        let bytes = std::fs::read(path)
            .map_err(|e| GgufError::Format(format!("{}: {e}", path.display())))?;
        Gguf::parse(bytes)
    }

    /// Parses a whole file's bytes.
    pub fn parse(bytes: Vec<u8>) -> Result<Gguf, GgufError> {
        let mut c = Cursor {
            bytes: &bytes,
            at: 0,
        };
        if c.take(4).ok() != Some(b"GGUF".as_slice()) {
            return Err(GgufError::Format("no GGUF magic".into()));
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Format(format!(
                "version {version} (2 or 3 are read)"
            )));
        }
        let tensor_count = c.count("tensor")?;
        let kv_count = c.count("metadata")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = c.string()?;
            let kind = c.u32()?;
            let value = c.value(kind, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = BTreeMap::new();
        for _ in 0..tensor_count {
            let name = c.string()?;
            let n_dims = c.u32()?;
            if !(1..=4).contains(&n_dims) {
                return Err(c.damaged(format!("tensor {name} has {n_dims} dimensions")));
            }
            let dims = (0..n_dims)
                .map(|_| c.u64())
                .collect::<Result<Vec<_>, _>>()?;
            let kind = TensorType::from_id(c.u32()?)
                .map_err(|id| c.damaged(format!("tensor {name}: unknown type {id}")))?;
            let offset = c.u64()?;
            let info = TensorInfo {
                name: name.clone(),
                dims,
                kind,
                offset,
            };
            if info.dims.iter().any(|d| *d == 0 || *d > COUNT_MAX) {
                return Err(c.damaged(format!("tensor {name} has dimensions {:?}", info.dims)));
            }
            tensors.insert(name, info);
        }
        let alignment = match metadata.get("general.alignment") {
            Some(Value::Uint(a)) if a.is_power_of_two() => *a as usize,
            None => 32,
            Some(other) => {
                return Err(GgufError::Metadata(format!(
                    "general.alignment is {other:?}"
                )));
            }
        };
        let data_start = c.at.div_ceil(alignment) * alignment;
        let gguf = Gguf {
            version,
            metadata,
            tensors,
            data_start,
            bytes,
        };
        for info in gguf.tensors.values() {
            gguf.tensor_bytes(info)?;
        }
        Ok(gguf)
    }

    /// The bytes of tensor `info` (checked to lie within the file).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8], GgufError> {
        let len = info
            .kind
            .bytes_for(info.dims[0], info.elements())
            .map_err(|e| GgufError::Tensor(format!("{}: {e}", info.name)))?;
        let start = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_start));
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(start), Some(end)) if end <= self.bytes.len() => Ok(&self.bytes[start..end]),
            _ => Err(GgufError::Damaged {
                offset: self.data_start,
                reason: format!("tensor {} lies beyond the end of the file", info.name),
            }),
        }
    }

    /// Tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensors
            .get(name)
            .ok_or_else(|| GgufError::Tensor(format!("{name} is missing")))
    }

    /// The unsigned integer at `key`.
    pub fn uint(&self, key: &str) -> Result<u64, GgufError> {
        match self.metadata.get(key) {
            Some(Value::Uint(v)) => Ok(*v),
            other => Err(GgufError::Metadata(format!(
                "{key} is {other:?}, not an integer"
            ))),
        }
    }

    /// The float at `key`.
    pub fn float(&self, key: &str) -> Result<f64, GgufError> {
        match self.metadata.get(key) {
            Some(Value::Float(v)) => Ok(*v),
            other => Err(GgufError::Metadata(format!(
                "{key} is {other:?}, not a float"
            ))),
        }
    }

    /// The string at `key`.
    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        match self.metadata.get(key) {
            Some(Value::Str(v)) => Ok(v),
            other => Err(GgufError::Metadata(format!(
                "{key} is {other:?}, not a string"
            ))),
        }
    }

    /// The array at `key`.
    pub fn array(&self, key: &str) -> Result<&[Value], GgufError> {
        match self.metadata.get(key) {
            Some(Value::Array(v)) => Ok(v),
            other => Err(GgufError::Metadata(format!(
                "{key} is {}, not an array",
                if other.is_some() {
                    "another type"
                } else {
                    "missing"
                }
            ))),
        }
    }
}
