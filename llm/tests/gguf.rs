//! The GGUF reader and dequantization against llama.cpp's own `gguf` Python package: a small
//! file it wrote (every metadata type, tensors F32, F16, Q4_0, Q4_1 and Q8_0, alignment 64) and
//! the values it dequantizes them to (`fixtures/make_fixture.py` made both).

use llm::gguf::{Gguf, GgufError, Value};
use llm::quant::{TensorType, dequantize};

fn fixture() -> (Vec<u8>, serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let bytes = std::fs::read(dir.join("tiny.gguf")).unwrap();
    let expected = serde_json::from_slice(&std::fs::read(dir.join("tiny.json")).unwrap()).unwrap();
    (bytes, expected)
}

#[test]
fn metadata_of_every_type_reads_back() {
    let gguf = Gguf::parse(fixture().0).unwrap();
    assert_eq!(gguf.version, 3);
    let m = &gguf.metadata;
    assert_eq!(m["test.u8"], Value::Uint(200));
    assert_eq!(m["test.i8"], Value::Int(-5));
    assert_eq!(m["test.u16"], Value::Uint(60_000));
    assert_eq!(m["test.i16"], Value::Int(-30_000));
    assert_eq!(m["test.u32"], Value::Uint(4_000_000_000));
    assert_eq!(m["test.i32"], Value::Int(-2_000_000_000));
    assert_eq!(m["test.f32"], Value::Float(0.25));
    assert_eq!(m["test.u64"], Value::Uint(1 << 40));
    assert_eq!(m["test.i64"], Value::Int(-(1 << 40)));
    assert_eq!(m["test.f64"], Value::Float(-1.5));
    assert_eq!(m["test.bool"], Value::Bool(true));
    assert_eq!(gguf.str("test.str").unwrap(), "héllo");
    assert_eq!(
        gguf.array("test.array").unwrap(),
        [Value::Str("a".into()), Value::Str("bc".into())]
    );
    assert_eq!(gguf.str("general.architecture").unwrap(), "llama");
    assert_eq!(gguf.uint("general.alignment").unwrap(), 64);
}

#[test]
fn every_tensor_dequantizes_to_what_the_reference_package_gives() {
    let (bytes, expected) = fixture();
    let gguf = Gguf::parse(bytes).unwrap();
    let kinds = [
        ("f32", TensorType::F32),
        ("f16", TensorType::F16),
        ("q4_0", TensorType::Q4_0),
        ("q4_1", TensorType::Q4_1),
        ("q8_0", TensorType::Q8_0),
    ];
    for (name, kind) in kinds {
        let info = gguf.tensor(name).unwrap();
        let shape: Vec<u64> = serde_json::from_value(expected["shapes"][name].clone()).unwrap();
        assert_eq!(
            info.dims,
            [shape[1], shape[0]],
            "{name}: the contiguous dimension first"
        );
        assert_eq!(info.kind, kind);
        let mut values = vec![0f32; info.elements() as usize];
        dequantize(kind, gguf.tensor_bytes(info).unwrap(), &mut values);
        let want: Vec<f32> = serde_json::from_value(expected["values"][name].clone()).unwrap();
        assert_eq!(values, want, "{name}");
    }
}

#[test]
fn damaged_files_are_refused_with_where() {
    let (bytes, _) = fixture();
    assert!(matches!(
        Gguf::parse(b"GGML....".to_vec()),
        Err(GgufError::Format(_))
    ));
    let mut version = bytes.clone();
    version[4] = 9;
    assert!(matches!(Gguf::parse(version), Err(GgufError::Format(_))));
    // Inside the header, the metadata, the tensor table, the last tensor (past it: padding).
    for cut in [10, 100, 600, 1200] {
        match Gguf::parse(bytes[..cut].to_vec()) {
            Err(GgufError::Damaged { .. }) => {}
            Err(other) => panic!("cut at {cut}: {other}"),
            Ok(_) => panic!("cut at {cut}: accepted"),
        }
    }
    let mut huge = bytes;
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(
        matches!(Gguf::parse(huge), Err(GgufError::Damaged { .. })),
        "a tensor count of 2^64"
    );
}
