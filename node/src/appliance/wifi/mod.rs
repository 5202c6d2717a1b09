//! Wi-Fi from the boot partition: the box joins a network, runs its own
//! hotspot, or joins when the network is in range and runs the hotspot
//! when it is not.
//!
//! - [`settings`]: the boot partition's `wifi.txt`, read into settings and
//!   the problems found in it (sans-IO).
//! - [`plan`]: what the radio does, and the hostapd and wpa_supplicant
//!   configs for it (sans-IO).
//! - [`report`]: the Wi-Fi state the image's controller
//!   (`/usr/libexec/ssb-node/wifi`) leaves in its run directory, read for
//!   `ssb-node status`.
//!
//! The node itself never touches the radio: `ssb-node wifi plan` (run as
//! root by `ssb-node-wifi.service` before the controller) writes the
//! configs, and the controller runs hostapd or wpa_supplicant.

pub mod plan;
pub mod report;
pub mod settings;
