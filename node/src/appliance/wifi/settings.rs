//! The boot partition's `wifi.txt`: what a keeper writes, read into
//! [`Settings`] and a list of [`Problem`]s.
//!
//! The format is one `key = value` per line, as in the Pi's own
//! `config.txt`: `#` starts a comment line, blank lines are ignored, spaces
//! around key and value are dropped, and a value in double quotes keeps its
//! spaces (`join_ssid = " Farm "`). Keys are case-insensitive. Files saved
//! on Windows read the same: CRLF line ends and a UTF-8 byte-order mark are
//! accepted.
//!
//! Keys: `country`; `join_ssid`, `join_passphrase` (a network to join);
//! `hotspot_ssid`, `hotspot_passphrase`, `hotspot_channel` (the box's own
//! network). A bad line never stops the others: its key is dropped and a
//! [`Problem`] says what is wrong and where.

use thiserror::Error;

/// The largest `wifi.txt` read (a few lines are expected).
pub const MAX_FILE_BYTES: usize = 16 * 1024;

/// At most this many problems are kept; the rest are counted only.
pub const MAX_PROBLEMS: usize = 16;

/// The keys `wifi.txt` knows.
pub const KEYS: [&str; 6] = [
    "country",
    "join_ssid",
    "join_passphrase",
    "hotspot_ssid",
    "hotspot_passphrase",
    "hotspot_channel",
];

/// ISO 3166-1 alpha-2 codes: what the kernel's regulatory database and
/// hostapd's `country_code` take.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI \
BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE \
DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS \
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW \
KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW \
MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO \
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM \
TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// A country code the regulatory database knows, upper case (`GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country([u8; 2]);

impl Country {
    /// The code if it is an ISO 3166-1 alpha-2 country (either case).
    pub fn parse(text: &str) -> Option<Country> {
        let upper = text.to_ascii_uppercase();
        let b = upper.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
            return None;
        }
        COUNTRIES
            .split(' ')
            .any(|c| c == upper)
            .then_some(Country([b[0], b[1]]))
    }

    /// The two letters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("00")
    }
}

/// A network name: 1 to 32 bytes (802.11's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssid(String);

impl Ssid {
    /// The name if it has 1 to 32 bytes; else its length.
    pub fn new(text: &str) -> Result<Ssid, usize> {
        if text.is_empty() || text.len() > 32 {
            return Err(text.len());
        }
        Ok(Ssid(text.to_owned()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its bytes in lower-case hex, the form hostapd's `ssid2` and
    /// wpa_supplicant's `ssid` take without any quoting.
    pub fn hex(&self) -> String {
        self.0.bytes().map(|b| format!("{b:02x}")).collect()
    }
}

/// A WPA2 passphrase: 8 to 63 printable ASCII characters, or a raw key of
/// 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Why a passphrase is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassphraseFault {
    /// Not 8 to 63 characters (nor 64 hex digits); the length it has.
    Length(usize),
    /// A character outside printable ASCII (space to `~`).
    Character,
}

impl Passphrase {
    /// The passphrase if WPA2 takes it.
    pub fn new(text: &str) -> Result<Passphrase, PassphraseFault> {
        if !text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(PassphraseFault::Character);
        }
        let raw_key = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !(8..=63).contains(&text.len()) && !raw_key {
            return Err(PassphraseFault::Length(text.chars().count()));
        }
        Ok(Passphrase(text.to_owned()))
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is a raw 256-bit key (64 hex digits) rather than a
    /// passphrase.
    pub fn is_raw_key(&self) -> bool {
        self.0.len() == 64
    }
}

/// A 2.4 GHz channel the hotspot may use (1 to 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel(u8);

impl Channel {
    /// The default: channel 6, allowed everywhere.
    pub const DEFAULT: Channel = Channel(6);

    /// The channel if it is 1 to 13.
    pub fn new(n: u8) -> Option<Channel> {
        (1..=13).contains(&n).then_some(Channel(n))
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self.0
    }
}

/// What is wrong in `wifi.txt`; the keeper's to fix. Line numbers count
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Problem {
    /// The file could not be read (other than being absent).
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// The file is larger than [`MAX_FILE_BYTES`]; only its start is read.
    #[error("larger than {MAX_FILE_BYTES} bytes; only the start is read")]
    TooLarge,
    /// A line is not UTF-8 text.
    #[error("line {line}: not UTF-8 text (save the file as UTF-8)")]
    NotText {
        /// The line.
        line: usize,
    },
    /// A line has no `=`.
    #[error("line {line}: not `key = value`")]
    NoEquals {
        /// The line.
        line: usize,
    },
    /// A key `wifi.txt` does not know.
    #[error("line {line}: unknown key `{key}` (known: {known})", known = KEYS.join(", "))]
    UnknownKey {
        /// The line.
        line: usize,
        /// The key as written (at most 40 characters).
        key: String,
    },
    /// A key given twice; the first stays.
    #[error("line {line}: `{key}` again (line {first} counts)")]
    Duplicate {
        /// The line.
        line: usize,
        /// The key.
        key: &'static str,
        /// Where it was first given.
        first: usize,
    },
    /// A key with nothing after `=`.
    #[error("line {line}: `{key}` has no value")]
    Empty {
        /// The line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A country code the regulatory database does not know.
    #[error("line {line}: unknown country `{value}` (a two-letter ISO code such as GB, DE, KE, US); the radio keeps the world-wide rules")]
    UnknownCountry {
        /// The line.
        line: usize,
        /// What was written (at most 40 characters).
        value: String,
    },
    /// A passphrase of the wrong length.
    #[error("line {line}: `{key}` must be 8 to 63 characters (it has {len})")]
    PassphraseLength {
        /// The line.
        line: usize,
        /// The key.
        key: &'static str,
        /// Its length in characters.
        len: usize,
    },
    /// A passphrase with a character WPA2 does not allow.
    #[error("line {line}: `{key}` may hold only printable ASCII characters (letters, digits, punctuation, spaces)")]
    PassphraseCharacter {
        /// The line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A network name longer than 32 bytes.
    #[error("line {line}: `{key}` must be 1 to 32 bytes (it has {len})")]
    SsidLength {
        /// The line.
        line: usize,
        /// The key.
        key: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A channel that is not 1 to 13.
    #[error("line {line}: `hotspot_channel` must be 1 to 13, not `{value}`")]
    Channel {
        /// The line.
        line: usize,
        /// What was written (at most 40 characters).
        value: String,
    },
    /// Channels 12 and 13 are not allowed everywhere: they need a country.
    #[error("line {line}: channel {channel} needs a `country` that allows it; channel 6 is used")]
    ChannelNeedsCountry {
        /// The line.
        line: usize,
        /// The channel.
        channel: u8,
    },
    /// One key of a pair without the other.
    #[error("`{missing}` is missing (`{given}` is on line {line}); {consequence}")]
    Missing {
        /// The key that is not there.
        missing: &'static str,
        /// The key that is.
        given: &'static str,
        /// Where it is.
        line: usize,
        /// What the box does instead.
        consequence: &'static str,
    },
    /// More problems than are kept.
    #[error("{0} more problems not shown")]
    More(usize),
}

/// The hotspot keys as given (each checked; absent or bad ones are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotspotSettings {
    /// `hotspot_ssid`.
    pub ssid: Option<Ssid>,
    /// `hotspot_passphrase`.
    pub passphrase: Option<Passphrase>,
    /// `hotspot_channel`.
    pub channel: Option<Channel>,
    /// Whether any `hotspot_*` key was written, good or bad: the keeper
    /// wants a hotspot.
    pub asked: bool,
}

/// A network to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// Its name.
    pub ssid: Ssid,
    /// Its passphrase.
    pub passphrase: Passphrase,
}

/// What `wifi.txt` says, with the bad parts left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `country`.
    pub country: Option<Country>,
    /// `join_ssid` with `join_passphrase`, when both are good.
    pub join: Option<Join>,
    /// Whether a `join_*` key was written, good or bad.
    pub join_asked: bool,
    /// The hotspot keys.
    pub hotspot: HotspotSettings,
}

/// At most this many characters of a value are quoted back in a problem.
const QUOTE_MAX: usize = 40;

fn quote(text: &str) -> String {
    text.chars().take(QUOTE_MAX).collect()
}

/// Reads `wifi.txt`'s bytes (at most [`MAX_FILE_BYTES`] are looked at).
pub fn parse(bytes: &[u8]) -> (Settings, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut bytes = bytes;
    if bytes.len() > MAX_FILE_BYTES {
        problems.push(Problem::TooLarge);
        bytes = &bytes[..MAX_FILE_BYTES];
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    // (key, line, value) of each key's first good-looking line.
    let mut seen: Vec<(&'static str, usize, String)> = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(text) = std::str::from_utf8(raw) else {
            problems.push(Problem::NotText { line });
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            problems.push(Problem::NoEquals { line });
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let Some(&key) = KEYS.iter().find(|k| **k == key) else {
            problems.push(Problem::UnknownKey {
                line,
                key: quote(&key),
            });
            continue;
        };
        let mut value = value.trim();
        if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            value = &value[1..value.len() - 1];
        }
        if let Some((_, first, _)) = seen.iter().find(|(k, _, _)| *k == key) {
            problems.push(Problem::Duplicate {
                line,
                key,
                first: *first,
            });
            continue;
        }
        seen.push((key, line, value.to_owned()));
    }

    let mut s = Settings::default();
    let get = |key: &str| seen.iter().find(|(k, _, _)| *k == key).cloned();
    let empty = |problems: &mut Vec<Problem>, key, line, value: &str| {
        if value.is_empty() {
            problems.push(Problem::Empty { line, key });
            true
        } else {
            false
        }
    };
    if let Some((key, line, value)) = get("country") {
        if !empty(&mut problems, key, line, &value) {
            s.country = Country::parse(&value);
            if s.country.is_none() {
                problems.push(Problem::UnknownCountry {
                    line,
                    value: quote(&value),
                });
            }
        }
    }
    let ssid = |problems: &mut Vec<Problem>, key, line, value: &str| match Ssid::new(value) {
        Ok(s) => Some(s),
        Err(0) => {
            problems.push(Problem::Empty { line, key });
            None
        }
        Err(len) => {
            problems.push(Problem::SsidLength { line, key, len });
            None
        }
    };
    let passphrase = |problems: &mut Vec<Problem>, key, line, value: &str| {
        if empty(problems, key, line, value) {
            return None;
        }
        match Passphrase::new(value) {
            Ok(p) => Some(p),
            Err(PassphraseFault::Length(len)) => {
                problems.push(Problem::PassphraseLength { line, key, len });
                None
            }
            Err(PassphraseFault::Character) => {
                problems.push(Problem::PassphraseCharacter { line, key });
                None
            }
        }
    };

    let join_ssid = get("join_ssid");
    let join_pass = get("join_passphrase");
    s.join_asked = join_ssid.is_some() || join_pass.is_some();
    let consequence = "the box does not join a network";
    match (&join_ssid, &join_pass) {
        (Some((k1, l1, v1)), Some((k2, l2, v2))) => {
            let ssid = ssid(&mut problems, k1, *l1, v1);
            let pass = passphrase(&mut problems, k2, *l2, v2);
            if let (Some(ssid), Some(passphrase)) = (ssid, pass) {
                s.join = Some(Join { ssid, passphrase });
            }
        }
        (Some((given, line, _)), None) => problems.push(Problem::Missing {
            missing: "join_passphrase",
            given,
            line: *line,
            consequence,
        }),
        (None, Some((given, line, _))) => problems.push(Problem::Missing {
            missing: "join_ssid",
            given,
            line: *line,
            consequence,
        }),
        (None, None) => {}
    }

    if let Some((key, line, value)) = get("hotspot_ssid") {
        s.hotspot.asked = true;
        s.hotspot.ssid = ssid(&mut problems, key, line, &value);
    }
    if let Some((key, line, value)) = get("hotspot_passphrase") {
        s.hotspot.asked = true;
        s.hotspot.passphrase = passphrase(&mut problems, key, line, &value);
    }
    if let Some((key, line, value)) = get("hotspot_channel") {
        s.hotspot.asked = true;
        if !empty(&mut problems, key, line, &value) {
            match value.parse::<u8>().ok().and_then(Channel::new) {
                None => problems.push(Problem::Channel {
                    line,
                    value: quote(&value),
                }),
                Some(c) if c.number() >= 12 && s.country.is_none() => {
                    problems.push(Problem::ChannelNeedsCountry {
                        line,
                        channel: c.number(),
                    })
                }
                Some(c) => s.hotspot.channel = Some(c),
            }
        }
    }

    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - (MAX_PROBLEMS - 1);
        problems.truncate(MAX_PROBLEMS - 1);
        problems.push(Problem::More(more));
    }
    (s, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(p: &[Problem]) -> Vec<String> {
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_empty_or_commented_file_sets_nothing() {
        for text in ["", "\n\n", "# country = GB\n  # join_ssid = x\r\n"] {
            let (s, p) = parse(text.as_bytes());
            assert_eq!(s, Settings::default(), "{text:?}");
            assert!(p.is_empty(), "{text:?}: {p:?}");
        }
    }

    #[test]
    fn a_full_file_with_crlf_and_a_bom_reads_like_unix_text() {
        let unix = "country = gb\njoin_ssid = Farm office\njoin_passphrase = \" secret 12 \"\n\
                    hotspot_ssid=Village box\nHOTSPOT_PASSPHRASE=longenough\nhotspot_channel = 11\n";
        let dos = format!("\u{feff}{}", unix.replace('\n', "\r\n"));
        let (a, pa) = parse(unix.as_bytes());
        let (b, pb) = parse(dos.as_bytes());
        assert!(pa.is_empty() && pb.is_empty(), "{pa:?} {pb:?}");
        assert_eq!(a, b);
        assert_eq!(a.country.unwrap().as_str(), "GB");
        let join = a.join.unwrap();
        assert_eq!(join.ssid.as_str(), "Farm office");
        assert_eq!(join.passphrase.as_str(), " secret 12 ");
        assert_eq!(a.hotspot.ssid.unwrap().as_str(), "Village box");
        assert_eq!(a.hotspot.passphrase.unwrap().as_str(), "longenough");
        assert_eq!(a.hotspot.channel, Some(Channel(11)));
        assert!(a.hotspot.asked && a.join_asked);
    }

    #[test]
    fn a_wrong_passphrase_length_is_named_with_its_line_and_dropped() {
        let (s, p) = parse(b"join_ssid = Farm\njoin_passphrase = short\nhotspot_passphrase = x\n");
        assert_eq!(s.join, None);
        assert!(s.join_asked);
        assert_eq!(s.hotspot.passphrase, None);
        assert!(
            s.hotspot.asked,
            "a bad hotspot key still asks for a hotspot"
        );
        assert_eq!(
            messages(&p),
            [
                "line 2: `join_passphrase` must be 8 to 63 characters (it has 5)",
                "line 3: `hotspot_passphrase` must be 8 to 63 characters (it has 1)",
            ]
        );
        let long = format!("hotspot_passphrase = {}\n", "z".repeat(64));
        let (_, p) = parse(long.as_bytes());
        assert_eq!(
            messages(&p),
            ["line 1: `hotspot_passphrase` must be 8 to 63 characters (it has 64)"]
        );
        // 64 hex digits are a raw key, which WPA2 takes.
        let raw = format!("hotspot_passphrase = {}\n", "ab".repeat(32));
        let (s, p) = parse(raw.as_bytes());
        assert!(p.is_empty(), "{p:?}");
        assert!(s.hotspot.passphrase.unwrap().is_raw_key());
        let (_, p) = parse("hotspot_passphrase = café au lait\n".as_bytes());
        assert!(matches!(
            p[..],
            [Problem::PassphraseCharacter { line: 1, .. }]
        ));
    }

    #[test]
    fn an_unknown_country_is_refused_and_the_rest_still_counts() {
        for bad in ["XX", "UK", "G", "GBR", "00", "é"] {
            let text = format!("country = {bad}\nhotspot_ssid = box\n");
            let (s, p) = parse(text.as_bytes());
            assert_eq!(s.country, None, "{bad}");
            assert_eq!(s.hotspot.ssid.as_ref().map(Ssid::as_str), Some("box"));
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(
                p[0].to_string()
                    .starts_with(&format!("line 1: unknown country `{bad}`")),
                "{}",
                p[0]
            );
        }
        assert_eq!(Country::parse("ke").unwrap().as_str(), "KE");
    }

    #[test]
    fn a_missing_key_of_a_pair_says_which_and_what_happens() {
        let (s, p) = parse(b"join_ssid = Farm\n");
        assert_eq!(s.join, None);
        assert!(s.join_asked);
        assert_eq!(
            messages(&p),
            ["`join_passphrase` is missing (`join_ssid` is on line 1); the box does not join a network"]
        );
        let (_, p) = parse(b"\n\njoin_passphrase = longenough\n");
        assert_eq!(
            messages(&p),
            ["`join_ssid` is missing (`join_passphrase` is on line 3); the box does not join a network"]
        );
        let (_, p) = parse(b"country =\n");
        assert_eq!(messages(&p), ["line 1: `country` has no value"]);
    }

    #[test]
    fn bad_lines_unknown_keys_and_duplicates_are_each_named() {
        let text = b"join_ssid Farm\npasphrase = x\njoin_ssid = A\njoin_ssid = B\n\
                     join_passphrase = longenough\n\xff\xfe = 1\nhotspot_ssid = 123456789012345678901234567890123\n";
        let (s, p) = parse(text);
        assert_eq!(s.join.unwrap().ssid.as_str(), "A");
        assert_eq!(
            messages(&p),
            [
                "line 1: not `key = value`",
                "line 2: unknown key `pasphrase` (known: country, join_ssid, join_passphrase, \
                 hotspot_ssid, hotspot_passphrase, hotspot_channel)",
                "line 4: `join_ssid` again (line 3 counts)",
                "line 6: not UTF-8 text (save the file as UTF-8)",
                "line 7: `hotspot_ssid` must be 1 to 32 bytes (it has 33)",
            ]
        );
    }

    #[test]
    fn channels_are_1_to_13_and_12_13_need_a_country() {
        for (text, channel, problem) in [
            ("hotspot_channel = 1", Some(1), None),
            (
                "hotspot_channel = 0",
                None,
                Some("must be 1 to 13, not `0`"),
            ),
            (
                "hotspot_channel = 36",
                None,
                Some("must be 1 to 13, not `36`"),
            ),
            ("hotspot_channel = six", None, Some("not `six`")),
            (
                "hotspot_channel = 13",
                None,
                Some("channel 13 needs a `country`"),
            ),
            ("country = DE\nhotspot_channel = 13", Some(13), None),
        ] {
            let (s, p) = parse(text.as_bytes());
            assert_eq!(s.hotspot.channel.map(Channel::number), channel, "{text}");
            match problem {
                None => assert!(p.is_empty(), "{text}: {p:?}"),
                Some(m) => assert!(
                    p.len() == 1 && p[0].to_string().contains(m),
                    "{text}: {p:?}"
                ),
            }
        }
    }

    #[test]
    fn problems_and_the_bytes_read_are_bounded() {
        let text = "nonsense\n".repeat(100);
        let (_, p) = parse(text.as_bytes());
        assert_eq!(p.len(), MAX_PROBLEMS);
        assert_eq!(p[MAX_PROBLEMS - 1], Problem::More(100 - (MAX_PROBLEMS - 1)));
        let big = vec![b'#'; MAX_FILE_BYTES * 4];
        let (_, p) = parse(&big);
        assert_eq!(p, [Problem::TooLarge]);
    }

    #[test]
    fn ssids_render_as_hex_and_passphrases_never_print() {
        assert_eq!(Ssid::new("A b").unwrap().hex(), "412062");
        assert_eq!(Ssid::new(""), Err(0));
        let p = Passphrase::new("secret123").unwrap();
        assert!(!format!("{p:?}").contains("secret"));
    }
}
