//! Feeds arbitrary text through `compose::interpolate` and `compose::parse_dotenv`: no panic,
//! text without `$` is unchanged, and escaping every `$` as `$$` gives the text back.
#![no_main]

use airlock::compose::{interpolate, parse_dotenv};
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    match name {
        "SET" => Some("value".into()),
        "EMPTY" => Some(String::new()),
        "DOLLAR" => Some("$".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let result = interpolate(text, &lookup);
    if !text.contains('$') {
        assert_eq!(result.as_ref().map(|(s, _)| s.as_str()), Ok(text));
    }
    let escaped = text.replace('$', "$$");
    assert_eq!(interpolate(&escaped, &lookup).map(|(s, _)| s), Ok(text.to_string()));
    let _ = parse_dotenv(text, &lookup);
});
