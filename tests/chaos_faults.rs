//! Fault suite, part 2: injected API faults.
#![allow(clippy::unwrap_used)]

mod support;

#[test]
fn placeholder_compiles() {
    let _ = support::faults::Plan::default();
}
