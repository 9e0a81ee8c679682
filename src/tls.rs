//! What the machines need to know about TLS, which the caller runs (RFC 3207, RFC 2595).

use crate::sasl::ChannelBinding;

/// Whether a client insists on TLS before anything secret is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// STARTTLS/STLS must succeed; a missing or refused upgrade ends the session before any
    /// credential is sent (the default).
    #[default]
    Required,
    /// Upgrade when offered, go on in plaintext otherwise (plaintext mechanisms still need
    /// the caller's explicit permission).
    Opportunistic,
    /// Never upgrade (for implicit TLS the caller reports TLS before the greeting).
    Disabled,
}

/// What the caller reports once its TLS handshake is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Channel binding data of the session (`tls-exporter` for TLS 1.3), for `-PLUS`.
    pub channel_binding: Option<ChannelBinding>,
    /// Server side: the identity the caller verified from the client's certificate, which
    /// SASL EXTERNAL authenticates as.
    pub peer_identity: Option<alloc::string::String>,
    /// Client side: whether this client presented a certificate (so EXTERNAL can be used).
    pub client_certificate: bool,
}
