//! Test plugin `test-faults`: each route fails in one way a plugin can fail,
//! so the host's fault handling can be tested. `GET /faults/ok` shows the
//! plugin still serves normal requests between faults.

use polypay_plugin_sdk::prelude::*;

pub struct Faults;

impl Plugin for Faults {
    const NAME: &'static str = "test-faults";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .get("/faults/ok", |_: &Request| Response::text(200, "fine"))
            .get("/faults/loop", |_: &Request| spin_forever())
            .get("/faults/alloc", |_: &Request| allocation_bomb())
            .get("/faults/panic", |_: &Request| -> Response {
                panic!("test-faults: deliberate panic")
            })
            .get("/faults/trap", |_: &Request| trap())
            .get("/faults/big-response", |_: &Request| {
                Response::new(200).body(vec![b'x'; 2 << 20])
            })
    }
}

fn spin_forever() -> Response {
    let mut n: u64 = 0;
    loop {
        // `black_box` keeps the optimiser from proving the loop has no effect.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocation_bomb() -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really committed.
        hoard.push(vec![0xa5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn trap() -> Response {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

polypay_plugin_sdk::export_plugin!(Faults);
