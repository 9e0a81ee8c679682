//! POP3 (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH (RFC 5034), APOP and XTND XMIT:
//! codec and sans-IO machines.
