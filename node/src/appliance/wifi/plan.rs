//! What the box's radio does, decided from [`Settings`]: join a network,
//! run a hotspot, or join when the network is in range and run the hotspot
//! when it is not; and the hostapd and wpa_supplicant configs for it.
//!
//! Defaults: a hotspot named after the node's id (`ssb-` and the id's first
//! eight characters) with a generated passphrase, on channel 6. A hotspot
//! runs unless only a good network to join is set; a `join_*` key that is
//! wrong never leaves the box unreachable: the hotspot runs instead.

use super::settings::{Channel, Country, Join, Passphrase, Settings, Ssid};
use crate::feed::FeedId;

/// The hotspot's own address; the DHCP pool follows it in the same /24.
pub const HOTSPOT_ADDRESS: &str = "10.42.0.1";

/// What the radio does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Join the network; no hotspot.
    Join,
    /// Run the hotspot.
    Hotspot,
    /// Join the network when it is in range, else run the hotspot.
    JoinOrHotspot,
}

impl Mode {
    /// `join`, `hotspot` or `join-or-hotspot` (what the controller script reads).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Join => "join",
            Mode::Hotspot => "hotspot",
            Mode::JoinOrHotspot => "join-or-hotspot",
        }
    }
}

/// The box's own network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hotspot {
    /// Its name.
    pub ssid: Ssid,
    /// Its passphrase.
    pub passphrase: Passphrase,
    /// Whether the passphrase is the generated one (then it is written to
    /// the boot partition, as nobody else knows it).
    pub generated: bool,
    /// Its channel.
    pub channel: Channel,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the radio does.
    pub mode: Mode,
    /// The regulatory country, if a good one is set.
    pub country: Option<Country>,
    /// The network to join (for [`Mode::Join`] and [`Mode::JoinOrHotspot`]).
    pub join: Option<Join>,
    /// The hotspot (for [`Mode::Hotspot`] and [`Mode::JoinOrHotspot`]).
    pub hotspot: Option<Hotspot>,
}

/// The default hotspot name: `ssb-` and the first eight characters of the
/// node's id after the `@` (base64; `+` and `/` become `-` and `_`), so it
/// matches the id the console shows.
pub fn default_ssid(node: &FeedId) -> Ssid {
    let id = node.to_string();
    let part: String = id
        .trim_start_matches('@')
        .chars()
        .take(8)
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    Ssid::new(&format!("ssb-{part}")).unwrap_or_else(|_| unreachable_ssid())
}

fn unreachable_ssid() -> Ssid {
    // "ssb-" and eight characters always fit 32 bytes.
    Ssid::new("ssb-node").unwrap_or_else(|_| unreachable!("a fixed 8-byte name"))
}

/// Letters and digits that cannot be misread for one another (no 0/o,
/// 1/l/i).
const PASSPHRASE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// A passphrase from 12 random bytes: three groups of four characters
/// (`xxxx-xxxx-xxxx`), about 59 bits, easy to type on a phone.
pub fn generate_passphrase(random: [u8; 12]) -> Passphrase {
    let mut text = String::with_capacity(14);
    for (i, b) in random.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            text.push('-');
        }
        // 31 letters: the modulo bias (256 = 8 * 31 + 8) is negligible here.
        text.push(char::from(
            PASSPHRASE_ALPHABET[usize::from(*b) % PASSPHRASE_ALPHABET.len()],
        ));
    }
    Passphrase::new(&text).unwrap_or_else(|_| unreachable!("14 printable characters"))
}

/// Decides what the radio does. `generated` is the box's own passphrase,
/// used when the file sets none (or a bad one).
pub fn plan(settings: &Settings, node: &FeedId, generated: &Passphrase) -> Plan {
    let hotspot_wanted = settings.hotspot.asked || settings.join.is_none();
    let hotspot = hotspot_wanted.then(|| {
        let (passphrase, generated) = match &settings.hotspot.passphrase {
            Some(p) => (p.clone(), false),
            None => (generated.clone(), true),
        };
        Hotspot {
            ssid: settings
                .hotspot
                .ssid
                .clone()
                .unwrap_or_else(|| default_ssid(node)),
            passphrase,
            generated,
            channel: settings.hotspot.channel.unwrap_or(Channel::DEFAULT),
        }
    });
    let mode = match (&settings.join, &hotspot) {
        (Some(_), Some(_)) => Mode::JoinOrHotspot,
        (Some(_), None) => Mode::Join,
        (None, _) => Mode::Hotspot,
    };
    Plan {
        mode,
        country: settings.country,
        join: settings.join.clone(),
        hotspot,
    }
}

impl Plan {
    /// hostapd's config for the hotspot on `interface` (WPA2-PSK, CCMP,
    /// 802.11n on 2.4 GHz), or `None` without a hotspot.
    pub fn hostapd_conf(&self, interface: &str) -> Option<String> {
        let h = self.hotspot.as_ref()?;
        let mut c = String::new();
        c.push_str(
            "# Written by `ssb-node wifi plan` from /boot/firmware/wifi.txt at each start.\n",
        );
        c.push_str(&format!("interface={interface}\ndriver=nl80211\n"));
        c.push_str("ctrl_interface=/run/hostapd\n");
        c.push_str(&format!("ssid2={}\n", h.ssid.hex()));
        if let Some(country) = &self.country {
            c.push_str(&format!(
                "country_code={}\nieee80211d=1\n",
                country.as_str()
            ));
        }
        c.push_str(&format!("hw_mode=g\nchannel={}\n", h.channel.number()));
        c.push_str("ieee80211n=1\nwmm_enabled=1\nauth_algs=1\nignore_broadcast_ssid=0\n");
        c.push_str("wpa=2\nwpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\n");
        if h.passphrase.is_raw_key() {
            c.push_str(&format!("wpa_psk={}\n", h.passphrase.as_str()));
        } else {
            c.push_str(&format!("wpa_passphrase={}\n", h.passphrase.as_str()));
        }
        Some(c)
    }

    /// wpa_supplicant's config for joining, or `None` without a network to
    /// join.
    pub fn wpa_supplicant_conf(&self) -> Option<String> {
        let j = self.join.as_ref()?;
        let mut c = String::new();
        c.push_str(
            "# Written by `ssb-node wifi plan` from /boot/firmware/wifi.txt at each start.\n",
        );
        c.push_str("ctrl_interface=DIR=/run/wpa_supplicant\nupdate_config=0\n");
        if let Some(country) = &self.country {
            c.push_str(&format!("country={}\n", country.as_str()));
        }
        c.push_str("network={\n");
        c.push_str(&format!("\tssid={}\n\tscan_ssid=1\n", j.ssid.hex()));
        c.push_str("\tkey_mgmt=WPA-PSK\n");
        if j.passphrase.is_raw_key() {
            c.push_str(&format!("\tpsk={}\n", j.passphrase.as_str()));
        } else {
            // wpa_supplicant takes everything between the first and the
            // last double quote, so quotes inside need no escaping.
            c.push_str(&format!("\tpsk=\"{}\"\n", j.passphrase.as_str()));
        }
        c.push_str("}\n");
        Some(c)
    }

    /// The note written to the boot partition (`wifi-hotspot.txt`) when the
    /// hotspot's passphrase is the generated one: name and passphrase, CRLF
    /// line ends so any editor shows it. `None` otherwise.
    pub fn hotspot_note(&self) -> Option<String> {
        let h = self.hotspot.as_ref().filter(|h| h.generated)?;
        Some(format!(
            "The box's own Wi-Fi network (hotspot), made at its first start:\r\n\
             \r\n\
             name: {}\r\n\
             passphrase: {}\r\n\
             \r\n\
             Phones on it reach the node at {HOTSPOT_ADDRESS}, port 8008.\r\n\
             Set your own in wifi.txt (hotspot_ssid, hotspot_passphrase).\r\n",
            h.ssid.as_str(),
            h.passphrase.as_str()
        ))
    }

    /// One line for the console and the log: what the radio will do.
    pub fn summary(&self) -> String {
        let hotspot = |h: &Hotspot| {
            let pass = if h.generated {
                format!(
                    "passphrase {} (also in wifi-hotspot.txt on the boot partition)",
                    h.passphrase.as_str()
                )
            } else {
                "passphrase as set in wifi.txt".to_owned()
            };
            format!(
                "hotspot \"{}\" on channel {}, {pass}",
                h.ssid.as_str(),
                h.channel.number()
            )
        };
        let country = match &self.country {
            Some(c) => format!("country {}", c.as_str()),
            None => "no country (world-wide rules)".to_owned(),
        };
        match (&self.join, &self.hotspot) {
            (Some(j), Some(h)) => format!(
                "join \"{}\" when in range, else {}; {country}",
                j.ssid.as_str(),
                hotspot(h)
            ),
            (Some(j), None) => format!("join \"{}\"; {country}", j.ssid.as_str()),
            (None, Some(h)) => format!("{}; {country}", hotspot(h)),
            (None, None) => format!("off; {country}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::settings::parse;
    use super::*;

    fn node() -> FeedId {
        "@AbC+/9xyzQaBcDeFgHiJkLmNoPqRsTuVwXyZ0123454=.ed25519"
            .parse()
            .unwrap()
    }

    fn pass() -> Passphrase {
        generate_passphrase([0, 1, 2, 3, 30, 31, 32, 62, 100, 200, 254, 255])
    }

    #[test]
    fn no_settings_give_the_default_hotspot() {
        let (s, _) = parse(b"");
        let p = plan(&s, &node(), &pass());
        assert_eq!(p.mode, Mode::Hotspot);
        let h = p.hotspot.as_ref().unwrap();
        assert_eq!(h.ssid.as_str(), "ssb-AbC-_9xy");
        assert!(h.generated);
        assert_eq!(h.channel, Channel::DEFAULT);
        assert_eq!(h.passphrase.as_str(), "abcd-9aba-hrgh");
        assert!(p.wpa_supplicant_conf().is_none());
        let conf = p.hostapd_conf("wlan0").unwrap();
        for line in [
            "interface=wlan0",
            "ssid2=7373622d4162432d5f397879",
            "channel=6",
            "wpa=2",
            "wpa_passphrase=abcd-9aba-hrgh",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} not in:\n{conf}");
        }
        assert!(!conf.contains("country_code"));
        let note = p.hotspot_note().unwrap();
        assert!(note.contains("name: ssb-AbC-_9xy\r\npassphrase: abcd-9aba-hrgh\r\n"));
        assert!(p.summary().contains("also in wifi-hotspot.txt"));
    }

    #[test]
    fn join_only_join_and_hotspot_and_a_bad_join() {
        let (s, _) = parse(b"country=DE\njoin_ssid=Farm\njoin_passphrase=pass\"word1\n");
        let p = plan(&s, &node(), &pass());
        assert_eq!(p.mode, Mode::Join);
        assert!(p.hostapd_conf("wlan0").is_none() && p.hotspot_note().is_none());
        let conf = p.wpa_supplicant_conf().unwrap();
        assert!(conf.contains("country=DE\n"), "{conf}");
        assert!(conf.contains("\tssid=4661726d\n"), "{conf}");
        assert!(conf.contains("\tpsk=\"pass\"word1\"\n"), "{conf}");

        let (s, _) = parse(b"join_ssid=Farm\njoin_passphrase=password1\nhotspot_channel=1\n");
        let p = plan(&s, &node(), &pass());
        assert_eq!(p.mode, Mode::JoinOrHotspot);
        assert_eq!(p.hotspot.as_ref().unwrap().channel.number(), 1);
        assert!(p
            .summary()
            .starts_with("join \"Farm\" when in range, else hotspot"));

        // A join that is wrong: the hotspot runs, so the box stays reachable.
        let (s, problems) = parse(b"join_ssid=Farm\njoin_passphrase=short\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(plan(&s, &node(), &pass()).mode, Mode::Hotspot);
    }

    #[test]
    fn a_set_hotspot_uses_its_keys_and_writes_no_note() {
        let hex = "0123456789abcdef".repeat(4);
        let text = format!("country=ke\nhotspot_ssid=Village\nhotspot_passphrase={hex}\n");
        let (s, _) = parse(text.as_bytes());
        let p = plan(&s, &node(), &pass());
        let conf = p.hostapd_conf("wlan1").unwrap();
        assert!(conf.contains(&format!("\nwpa_psk={hex}\n")), "{conf}");
        assert!(conf.contains("\ncountry_code=KE\n"), "{conf}");
        assert!(p.hotspot_note().is_none());
        assert!(!p.summary().contains(&hex));
    }

    #[test]
    fn generated_passphrases_use_the_plain_alphabet() {
        for seed in 0..=255u8 {
            let p = generate_passphrase([seed; 12]);
            assert_eq!(p.as_str().len(), 14);
            assert!(p
                .as_str()
                .bytes()
                .all(|b| b == b'-' || PASSPHRASE_ALPHABET.contains(&b)));
        }
    }
}
