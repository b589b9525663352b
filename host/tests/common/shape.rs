//! Comparing an answer with a seed document's example by shape: the same fields, each of
//! the example's JSON type. What the conformance tests of every dialect assert first.

use serde_json::Value;

/// Asserts `actual` has exactly the example's fields, recursively into objects, each of
/// the example's JSON type: an integer where the example has an integer, any number where
/// it has a fraction, a string where it has a string, a boolean where it has one, null
/// where it has null. Fields named in `nullable` may also be null (a value the server does
/// not have yet, or does not know) or, where the example has null, a string (a time the
/// server has set by now).
pub fn assert_same_shape(actual: &Value, example: &Value, nullable: &[&str]) {
    let (a, e) = (
        actual
            .as_object()
            .unwrap_or_else(|| panic!("{actual} is not an object")),
        example.as_object().expect("the example is an object"),
    );
    let mut a_keys: Vec<_> = a.keys().collect();
    let mut e_keys: Vec<_> = e.keys().collect();
    a_keys.sort();
    e_keys.sort();
    assert_eq!(a_keys, e_keys, "fields of {actual}");
    for (key, want) in e {
        let got = &a[key];
        let same = match want {
            Value::Object(_) => {
                assert_same_shape(got, want, nullable);
                true
            }
            _ if got.is_null() && nullable.contains(&key.as_str()) => true,
            Value::Null => got.is_null() || (nullable.contains(&key.as_str()) && got.is_string()),
            Value::Number(n) if n.is_u64() => got.is_u64(),
            Value::Number(_) => got.is_number(),
            Value::String(_) => got.is_string(),
            Value::Bool(_) => got.is_boolean(),
            // Arrays: every element has the shape of the example's first element.
            Value::Array(items) => match (items.first(), got.as_array()) {
                (Some(first @ Value::Object(_)), Some(got)) => {
                    got.iter()
                        .for_each(|g| assert_same_shape(g, first, nullable));
                    true
                }
                (_, got) => got.is_some(),
            },
        };
        assert!(
            same,
            "field {key}: {got} is not of the example's type ({want})"
        );
    }
}
