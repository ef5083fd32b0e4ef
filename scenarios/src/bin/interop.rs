//! The interop matrix runner started by `cargo xtask interop`: one line `CELL <json>` on
//! stdout per finished cell (see [`spread_scenarios::interop::CellResult`]), progress on
//! stderr.
//!
//! `interop [--quick] [--rows c,rust,mixed] [--libs libspread,spread-rs] [--events join,...]
//! [--logs DIR]`; our daemon from `SPREAD_RS_DAEMON` (else built), C's where spread-sys
//! finds it (`SPREAD_C_PREFIX`, ..., else /usr/local, /usr). Rows that need C are left out
//! without it, and libspread without the `libspread` feature.

use spread_scenarios::interop::{run_cell, Event, Row};
use spread_scenarios::{build_our_daemon, CSpread, Library, SpreadRs};
use std::io::Write;
use std::path::PathBuf;

fn list(args: &[String], flag: &str) -> Option<Vec<String>> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_owned).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let c_spread = CSpread::find().ok();
    let rust = match std::env::var_os("SPREAD_RS_DAEMON") {
        Some(p) => PathBuf::from(p),
        None => build_our_daemon().unwrap_or_else(|e| panic!("{e}")),
    };
    let logs = list(&args, "--logs").map(|v| PathBuf::from(&v[0]));

    let mut libraries: Vec<&dyn Library> = Vec::new();
    #[cfg(feature = "libspread")]
    libraries.push(&spread_scenarios::LibSpread);
    libraries.push(&SpreadRs);
    let wanted_libs = list(&args, "--libs");
    libraries.retain(|l| {
        wanted_libs
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == l.name()))
            && (!quick || l.name() == "spread-rs")
    });

    let wanted_rows = list(&args, "--rows");
    let rows: Vec<Row> = Row::ALL
        .into_iter()
        .filter(|r| {
            wanted_rows
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == r.key()))
        })
        .filter(|r| !quick || *r == Row::AllRust)
        .filter(|r| {
            let ok = !r.needs_c() || c_spread.is_some();
            if !ok {
                eprintln!("no C Spread: leaving out the {} row", r.label());
            }
            ok
        })
        .collect();
    let wanted_events = list(&args, "--events");
    let events: Vec<Event> = Event::ALL
        .into_iter()
        .filter(|e| {
            wanted_events
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == e.key()))
        })
        .collect();

    // Each cell reports panics itself.
    std::panic::set_hook(Box::new(|_| {}));
    let total = rows.len() * libraries.len() * events.len();
    println!("CELLS {total}");
    let mut done = 0;
    for row in &rows {
        for library in &libraries {
            for event in &events {
                done += 1;
                eprintln!(
                    "[{done}/{total}] {} / {} / {} ...",
                    row.label(),
                    library.name(),
                    event.label()
                );
                #[cfg(feature = "libspread")]
                let _one_at_a_time = spread_scenarios::LIBSPREAD
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let result = run_cell(
                    *row,
                    c_spread.as_ref(),
                    &rust,
                    *library,
                    *event,
                    logs.as_deref(),
                );
                println!(
                    "CELL {}",
                    serde_json::to_string(&result).expect("a cell as JSON")
                );
                std::io::stdout().flush().expect("stdout");
            }
        }
    }
}
