//! The supervisor daemon (`enforcecore serve`): control socket, peer identity,
//! rate limits, systemd integration, reload.
