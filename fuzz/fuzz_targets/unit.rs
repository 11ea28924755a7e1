//! A unit file with a drop-in: parsed and checked as systemd would. Any input gives a
//! unit set or diagnostics, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first half is the unit, the rest its drop-in.
    let (unit, dropin) = data.split_at(data.len() / 2);
    let _ = strata::units::load([
        ("app.service", unit),
        ("app.service.d/10-fuzz.conf", dropin),
    ]);
});
