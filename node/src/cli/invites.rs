//! `ssb-node invite create|list|revoke`: the invite control commands, and
//! how their replies print.

use std::io::Write;

use anyhow::{bail, Result};

use ssb_node::service::command::{Command as NodeCommand, Reply};
use ssb_node::service::invites::{CreateOptions, InviteRow};

use super::InviteCommand;

/// The control command for `command`, and whether it prints JSON.
pub fn command(command: InviteCommand) -> (NodeCommand, bool) {
    match command {
        InviteCommand::Create {
            uses,
            expires,
            note,
        } => {
            let options = CreateOptions {
                uses,
                expires_days: expires,
                note,
            };
            (NodeCommand::InviteCreate { options }, false)
        }
        InviteCommand::List { json } => (NodeCommand::InviteList, json),
        InviteCommand::Revoke { id } => (NodeCommand::InviteRevoke { id }, false),
    }
}

/// Prints one invite as a line.
fn print_row(r: &InviteRow, out: &mut dyn Write) -> Result<()> {
    let expires = match r.expires {
        Some(ms) => format!("expires {}", when(ms)),
        None => "no expiry".to_owned(),
    };
    let mut line = format!(
        "{} {} {}/{} uses left, {}, created {}",
        r.id,
        r.state,
        r.uses_left,
        r.uses,
        expires,
        when(r.created),
    );
    if let Some(n) = &r.note {
        line.push_str(&format!(": {n}"));
    }
    writeln!(out, "{line}")?;
    Ok(())
}

/// A time (ms since the epoch) as UTC `YYYY-MM-DD HH:MM`.
fn when(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn print_list(rows: &[InviteRow], json: bool, out: &mut dyn Write) -> Result<()> {
    if rows.is_empty() && !json {
        writeln!(out, "no invites")?;
    }
    for r in rows {
        if json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        } else {
            print_row(r, out)?;
        }
    }
    Ok(())
}

/// Prints the reply to an invite command: one invite (with its code as the
/// last line if it was just made), or the list.
pub fn print(reply: Reply, json: bool, out: &mut dyn Write) -> Result<()> {
    match reply {
        Reply::Invite(row) => {
            print_row(&row, out)?;
            // A new invite's code is the last line, for scripts and copying.
            if let Some(code) = &row.code {
                writeln!(out, "{code}")?;
            }
            Ok(())
        }
        Reply::Invites(rows) => print_list(&rows, json, out),
        _ => bail!("the node's reply is not about invites"),
    }
}

#[cfg(test)]
mod tests {
    use super::when;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_000_000_000), "2026-11-30 00:53 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
