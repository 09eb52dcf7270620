//! `--user`: after the ports are bound, drop root for good (groups, gid, uid).

use anyhow::{anyhow, Context};
use nix::unistd::{setgid, setgroups, setuid, Uid, User};

/// Become `name`. glibc applies `setuid` to every thread of the process.
pub fn drop_to(name: &str) -> anyhow::Result<()> {
    let user = User::from_name(name)
        .with_context(|| format!("looking up user `{name}`"))?
        .ok_or_else(|| anyhow!("--user: no user named `{name}` on this system"))?;
    setgroups(&[user.gid]).context("--user: setgroups")?;
    setgid(user.gid).context("--user: setgid")?;
    setuid(user.uid).context("--user: setuid")?;
    if setuid(Uid::from_raw(0)).is_ok() && user.uid.as_raw() != 0 {
        return Err(anyhow!(
            "--user: could regain root after dropping it; refusing to go on"
        ));
    }
    Ok(())
}
