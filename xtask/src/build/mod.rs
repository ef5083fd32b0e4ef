//! `cargo xtask build`: one Linux target cross-built and run under qemu (`cross`), or with
//! `--target all` every platform of the table as far as this machine allows (`all`, through
//! `platform` for each), recorded in platforms/platforms.json (`record`) and rendered into
//! docs/platforms.md (`render`). `targets` is the table; `cargo_test` runs cargo and counts
//! its tests.

mod all;
mod cargo_test;
mod cross;
mod platform;
mod record;
mod render;
mod targets;

use crate::flags::BuildArgs;
use anyhow::bail;
use record::Record;
use targets::TARGETS;
use xshell::Shell;

pub fn run(sh: &Shell, args: BuildArgs) -> anyhow::Result<()> {
    if args.render_only {
        if args.target.as_deref().is_some_and(|t| t != "all") {
            bail!("--render-only goes with --target all");
        }
        return render::render_again(sh, args.check);
    }
    // clap asks for --target whenever --render-only is absent.
    let target = args.target.unwrap_or_default();
    if target == "all" {
        return all::run(sh);
    }
    let Some(t) = TARGETS.iter().find(|t| t.rust == target) else {
        let known: Vec<_> = TARGETS.iter().map(|t| t.rust).collect();
        bail!(
            "unknown target {target}; known: {}, or all",
            known.join(", ")
        );
    };
    let mut rec = Record::default();
    cross::cross(sh, t, args.test, &mut rec)?;
    if rec.tests.failed > 0 {
        bail!("{} test(s) failed under {}", rec.tests.failed, t.qemu);
    }
    Ok(())
}
