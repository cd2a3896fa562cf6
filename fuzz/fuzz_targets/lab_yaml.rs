//! The lab topology parser never panics on any text, and every error it
//! reports names the line (1-based) it is about, inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Lines as YAML counts them: `\n`, `\r\n` and a lone `\r` end one. A
    // position may point one line past the last break (end of input).
    let breaks =
        text.matches('\n').count() + text.matches('\r').count() - text.matches("\r\n").count();
    let lines = breaks + 2;
    match rvs_lab::parse("fuzz.yml", text) {
        Ok(topo) => {
            // What the commands derive from a valid topology must not panic.
            let _ = topo.domains();
            let _ = rvs_lab::to_dot(&topo);
            let _ = rvs_lab::to_mermaid(&topo);
        }
        Err(errs) => {
            assert!(!errs.0.is_empty(), "an error without a problem");
            for e in &errs.0 {
                assert!(
                    (1..=lines).contains(&e.pos.line),
                    "error without a line in the file ({breaks} line breaks): {e}"
                );
                let _ = e.to_string();
            }
        }
    }
});
