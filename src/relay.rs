//! POP-before-SMTP: a table of recently authenticated client addresses, and the submission
//! policy that decides whether an SMTP session may relay.
