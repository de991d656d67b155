use super::*;

#[test]
fn placeholder_for_now() {}
