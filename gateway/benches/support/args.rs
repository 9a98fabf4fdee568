//! A bench's command line: `--name value` pairs; anything else (such as
//! the `--bench` cargo passes) is ignored.

/// The value given after `--name`, if it was given.
pub fn value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}
