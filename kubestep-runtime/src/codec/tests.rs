use super::*;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Unit;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Meters(f64);

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(u32, i64),
    Mesh { name: String, points: Vec<f32> },
}

/// Every kind of value serde has, numeric runs of each plain type among them.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Everything {
    flag: bool,
    small: (i8, i16, i32, i64, i128),
    unsigned: (u8, u16, u32, u64, u128, usize),
    floats: (f32, f64),
    letter: char,
    text: String,
    bytes: Vec<u8>,
    signed_bytes: Vec<i8>,
    weights: Vec<f64>,
    halves: Box<[f32]>,
    nested: Vec<Vec<f64>>,
    maybe: Option<Vec<f64>>,
    nothing: Option<u8>,
    unit: (),
    unit_struct: Unit,
    newtype: Meters,
    shapes: Vec<Shape>,
    columns: BTreeMap<String, Vec<f64>>,
    ints: Vec<u64>,
}

fn everything(n: usize) -> Everything {
    Everything {
        flag: true,
        small: (-5, -300, -70_000, i64::MIN, i128::MAX),
        unsigned: (200, 60_000, u32::MAX, u64::MAX, u128::MAX, 1 << 40),
        floats: (1.5, -0.0),
        letter: 'λ',
        text: "kubestep ✓".into(),
        bytes: (0..=255).collect(),
        signed_bytes: vec![-128, -1, 0, 127],
        weights: (0..n).map(|i| i as f64 * 0.5 - 3.0).collect(),
        halves: (0..n).map(|i| i as f32).collect(),
        nested: vec![
            vec![],
            vec![1.0, f64::NAN.copysign(1.0)],
            vec![f64::INFINITY; 3],
        ],
        maybe: Some(vec![2.5; n]),
        nothing: None,
        unit: (),
        unit_struct: Unit,
        newtype: Meters(9.81),
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.0),
            Shape::Rect(3, -4),
            Shape::Mesh {
                name: "m".into(),
                points: vec![0.25; n],
            },
        ],
        columns: [("a".to_string(), vec![1.0; n]), ("b".into(), vec![])]
            .into_iter()
            .collect(),
        ints: (0..n as u64).map(|i| i * 1000).collect(),
    }
}

/// Bit-exact equality, so NaN payloads count too.
fn same_bits(a: &Everything, b: &Everything) -> bool {
    postcard::to_allocvec(a).unwrap() == postcard::to_allocvec(b).unwrap()
}

#[test]
fn the_bytes_are_postcards_for_every_kind_of_value() {
    for n in [0, 1, 1000, (1 << 20) / 8 + 3] {
        let value = everything(n);
        let ours = encode(&value).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&value).unwrap(), "n = {n}");
        assert!(same_bits(&decode::<Everything>(&ours).unwrap(), &value));
        let chunks = encode_owned(value.clone()).unwrap();
        assert_eq!(chunks.concat(), ours, "the chunks are the same bytes");
    }
}

#[test]
fn a_large_run_inside_a_struct_is_one_block_each_way() {
    let value = everything(1 << 18); // 2 MiB of f64 in `weights`, 1 MiB of f32 in `halves`
    let chunks = encode_owned(value.clone()).unwrap();
    let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
    assert!(
        sizes.contains(&(2 << 20)) && sizes.contains(&(1 << 20)),
        "each large run is a chunk of its own: {sizes:?}"
    );
    let before = de::PLAIN_RUNS.with(std::cell::Cell::get);
    let back: Everything = decode(&chunks.concat()).unwrap();
    let runs = de::PLAIN_RUNS.with(std::cell::Cell::get) - before;
    assert!(same_bits(&back, &value));
    // weights, halves, the three nested, maybe, the mesh's points, both columns, bytes,
    // signed_bytes: every Vec of a plain type; `ints` (varints) is not one.
    assert_eq!(runs, 11, "every plain vector is decoded as one block");
}

#[test]
fn a_visitor_of_its_own_sees_every_element() {
    /// Keeps only the positive numbers: a block copy would keep them all.
    struct Positive(Vec<f64>);
    impl<'de> Deserialize<'de> for Positive {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Vec<f64>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("numbers")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Vec<f64>, A::Error> {
                    let mut out = Vec::new();
                    while let Some(x) = seq.next_element::<f64>()? {
                        if x > 0.0 {
                            out.push(x);
                        }
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(V).map(Positive)
        }
    }
    let bytes = encode(&vec![1.0f64, -2.0, 3.0]).unwrap();
    assert_eq!(decode::<Positive>(&bytes).unwrap().0, vec![1.0, 3.0]);
}

#[test]
fn bad_bytes_are_errors_not_panics_or_huge_allocations() {
    let good = encode(&(true, Some(7u8), vec![1.5f64, 2.5])).unwrap();
    type T = (bool, Option<u8>, Vec<f64>);
    for cut in 0..good.len() {
        assert!(matches!(
            decode::<T>(&good[..cut]),
            Err(Error::UnexpectedEnd)
        ));
    }
    let mut extra = good.clone();
    extra.push(0);
    assert!(matches!(decode::<T>(&extra), Err(Error::TrailingBytes(1))));
    let mut bad_bool = good.clone();
    bad_bool[0] = 2;
    assert!(matches!(decode::<T>(&bad_bool), Err(Error::BadBool(2))));
    let mut bad_option = good.clone();
    bad_option[1] = 9;
    assert!(matches!(decode::<T>(&bad_option), Err(Error::BadOption(9))));
    // A length of 2^63 elements, with nothing behind it, for both kinds of vector.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    assert!(decode::<Vec<f64>>(&huge).is_err());
    assert!(decode::<Vec<u64>>(&huge).is_err());
    assert!(matches!(
        decode::<u16>(&[0xff, 0xff, 0x04]),
        Err(Error::BadVarint)
    ));
    assert!(matches!(
        decode::<String>(&[2, 0xc3, 0x28]),
        Err(Error::BadUtf8)
    ));
    assert!(matches!(encode(&NoLength), Err(Error::LengthUnknown)));
}

/// A sequence that does not know its length.
struct NoLength;
impl Serialize for NoLength {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0..3u8).filter(|_| true))
    }
}

/// What the property test generates.
type Mixed = (
    Vec<f64>,
    Vec<u8>,
    Vec<i64>,
    String,
    Option<u32>,
    Vec<(u16, i32, char)>,
);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn any_value_round_trips_as_postcard(
        floats in proptest::collection::vec(any::<f64>(), 0..64),
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ints in proptest::collection::vec(any::<i64>(), 0..16),
        text in ".{0,20}",
        maybe in any::<Option<u32>>(),
        pairs in proptest::collection::vec(any::<(u16, i32, char)>(), 0..8),
    ) {
        let value = (floats, bytes, ints, text, maybe, pairs);
        let ours = encode(&value).unwrap();
        prop_assert_eq!(&ours, &postcard::to_allocvec(&value).unwrap());
        let back: Mixed = decode(&ours).unwrap();
        prop_assert_eq!(encode(&back).unwrap(), ours);
    }
}

#[test]
fn join_and_tuple_match_postcard() {
    let items: Vec<Vec<u8>> = (0..300u64).map(|i| encode(&(i * 7)).unwrap()).collect();
    let joined: Vec<u64> = decode(&join(&items)).unwrap();
    assert_eq!(joined, (0..300u64).map(|i| i * 7).collect::<Vec<_>>());
    let pair: (String, f64) = decode(&tuple(&[
        encode(&"a".to_string()).unwrap(),
        encode(&1.5f64).unwrap(),
    ]))
    .unwrap();
    assert_eq!(pair, ("a".to_string(), 1.5));
    let parts = split::<u64>(&encode(&vec![1u64, 2, 3]).unwrap()).unwrap();
    assert_eq!(parts.len(), 3);
    assert!(decode::<u8>(&encode(&300u64).unwrap()).is_err());
}

#[test]
fn a_bare_vector_is_stored_from_its_own_buffer() {
    let floats: Vec<f64> = (0..1000).map(|i| i as f64 * 0.25 - 7.0).collect();
    let owned = floats.clone();
    let ptr = owned.as_ptr().cast::<u8>();
    let chunks = encode_owned(owned).unwrap();
    assert_eq!(chunks[1].as_ptr(), ptr, "not copied");
    assert_eq!(chunks.concat(), postcard::to_allocvec(&floats).unwrap());
    assert_eq!(decode::<Vec<f64>>(&chunks.concat()).unwrap(), floats);
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(
        encode_owned(bytes.clone()).unwrap().concat(),
        postcard::to_allocvec(&bytes).unwrap()
    );
    assert!(
        decode::<Vec<f64>>(&encode(&vec![1u8, 2, 3]).unwrap()).is_err(),
        "a wrong length is an error"
    );
}

#[cfg(feature = "ndarray")]
#[test]
fn an_owned_array_is_stored_from_its_own_buffer_and_read_as_one_block() {
    use ndarray::{Array2, Array3, ArrayD, IxDyn, s};
    let matrix = Array2::from_shape_fn((300, 200), |(i, j)| (i * 1000 + j) as f64);
    let reference = postcard::to_allocvec(&matrix).unwrap();
    let owned = matrix.clone();
    let ptr = owned.as_ptr().cast::<u8>();
    let chunks = encode_owned(owned).unwrap();
    assert_eq!(chunks[1].as_ptr(), ptr, "not copied");
    assert_eq!(chunks.concat(), reference, "ndarray's own serde format");
    let before = de::PLAIN_RUNS.with(std::cell::Cell::get);
    assert_eq!(decode::<Array2<f64>>(&reference).unwrap(), matrix);
    assert_eq!(de::PLAIN_RUNS.with(std::cell::Cell::get) - before, 1);
    // Transposed, sliced in place, dynamic, empty: the same bytes as serde's.
    let transposed = matrix.t().to_owned();
    let t = matrix.clone().reversed_axes();
    assert!(!t.is_standard_layout());
    assert_eq!(
        encode_owned(t.clone()).unwrap().concat(),
        postcard::to_allocvec(&t).unwrap()
    );
    assert_eq!(
        decode::<Array2<f64>>(&encode(&t).unwrap()).unwrap(),
        transposed
    );
    let mut sliced =
        Array3::<f32>::from_shape_fn((4, 5, 6), |(a, b, c)| (a * 100 + b * 10 + c) as f32);
    sliced.slice_collapse(s![1..3, .., ..]);
    assert!(sliced.is_standard_layout());
    assert_eq!(
        encode_owned(sliced.clone()).unwrap().concat(),
        postcard::to_allocvec(&sliced).unwrap()
    );
    let dynamic = ArrayD::<u8>::from_shape_fn(IxDyn(&[2, 3, 4, 5, 6]), |d| d[4] as u8);
    let bytes = encode_owned(dynamic.clone()).unwrap().concat();
    assert_eq!(bytes, postcard::to_allocvec(&dynamic).unwrap());
    assert_eq!(decode::<ArrayD<u8>>(&bytes).unwrap(), dynamic);
    // Inside a struct, ndarray's serde support writes the elements one by one: into a chunk
    // made at their exact size, not a buffer grown by copying.
    #[derive(Serialize)]
    struct Held {
        name: String,
        weights: Array2<f64>,
    }
    let held = Held {
        name: "w".into(),
        weights: Array2::from_shape_fn((512, 256), |(i, j)| (i + j) as f64),
    };
    let chunks = encode_owned(held).unwrap();
    let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
    assert!(sizes.contains(&(1 << 20)), "{sizes:?}");
    let empty = Array2::<f64>::zeros((0, 3));
    assert_eq!(
        encode_owned(empty.clone()).unwrap().concat(),
        postcard::to_allocvec(&empty).unwrap()
    );
}

#[cfg(feature = "arrow")]
#[test]
fn a_record_batch_is_one_arrow_ipc_stream_and_bad_ones_are_named() {
    use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(0..100_000)) as ArrayRef,
        ),
        (
            "x",
            Arc::new(Float64Array::from_iter_values((0..100_000).map(f64::from))),
        ),
        (
            "name",
            Arc::new(StringArray::from_iter_values(
                (0..100_000).map(|i| format!("n{i}")),
            )),
        ),
    ])
    .unwrap();
    let chunks = encode_owned(arrow::Table(batch.clone())).unwrap();
    let bytes = chunks.concat();
    assert_eq!(
        bytes,
        encode(&arrow::Table(batch.clone())).unwrap(),
        "the owned path writes the same bytes"
    );
    assert_eq!(decode::<arrow::Table>(&bytes).unwrap().0, batch);
    // Inside a struct, through `#[serde(with = ...)]`.
    #[derive(Serialize, Deserialize)]
    struct Held {
        label: String,
        #[serde(with = "arrow")]
        batch: RecordBatch,
    }
    let held = encode(&Held {
        label: "t".into(),
        batch: batch.clone(),
    })
    .unwrap();
    let back: Held = decode(&held).unwrap();
    assert_eq!((back.label.as_str(), &back.batch), ("t", &batch));
    // A byte string that is not an IPC stream is named as such.
    let err = decode::<arrow::Table>(&encode(&serde_bytes_like(b"not arrow")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an Arrow IPC stream"), "{err}");
    // A stream of two batches is not a Table.
    let mut two = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
    two.write(&batch).unwrap();
    two.write(&batch).unwrap();
    let two = two.into_inner().unwrap();
    let err = decode::<arrow::Table>(&encode(&serde_bytes_like(&two)).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than one record batch"), "{err}");
}

#[cfg(feature = "arrow")]
/// Bytes serialized as a byte string (what `serde_bytes` does), not a sequence.
fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
    struct B<'a>(&'a [u8]);
    impl Serialize for B<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    B(bytes)
}
