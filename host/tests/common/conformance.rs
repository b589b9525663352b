//! Replaying a dialect's seed document against the real server: send a request and read
//! its JSON answer, and compare an answer with the document's example field by field.

use reqwest::RequestBuilder;
use serde_json::Value;

/// Sends `request`, returns (status, JSON body); panics with the body if it is not JSON.
pub async fn call(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("HTTP {status}: body is not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts `actual` has exactly the example's fields, each of the example's JSON type (an
/// integer where the example has an integer). A field named in `nullable` may also be
/// `null` (a value not known yet, such as the transaction of an unpaid payment).
pub fn assert_same_shape(actual: &Value, example: &Value, nullable: &[&str]) {
    let (a, e) = (actual.as_object().unwrap(), example.as_object().unwrap());
    let mut a_keys: Vec<_> = a.keys().collect();
    let mut e_keys: Vec<_> = e.keys().collect();
    a_keys.sort();
    e_keys.sort();
    assert_eq!(a_keys, e_keys, "fields of {actual}");
    for (key, want) in e {
        let got = &a[key];
        let same = match want {
            _ if got.is_null() && nullable.contains(&key.as_str()) => true,
            Value::Number(n) if n.is_u64() => got.is_u64(),
            Value::Number(_) => got.is_number(),
            Value::String(_) => got.is_string(),
            Value::Bool(_) => got.is_boolean(),
            other => panic!("example field {key} has an unexpected type: {other}"),
        };
        assert!(
            same,
            "field {key}: {got} is not of the example's type ({want})"
        );
    }
}
