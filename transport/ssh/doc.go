// Package ssh is drover's SSH transport: one authenticated connection per
// host, reused for every command and upload of a deployment.
//
// A Dialer holds what is shared by every host (user, keys, the known_hosts
// policy); Dial opens a Client for one address. A Client satisfies the
// engine's Host seam structurally (Run, Put, Close); this package does not
// import the engine.
//
// Invariants worth knowing before changing this code:
//
//   - Host keys are always verified against known_hosts. There is no
//     "insecure" switch. A changed key is refused even in accept-new mode;
//     accept-new only ever appends keys for hosts that have no entry at all.
//   - When a host is in known_hosts, the handshake offers only the host key
//     algorithms recorded for it, so that a host offering an unrecorded type
//     first is not mistaken for a changed key.
//   - A call is retried at most once, and only when the transport broke (not
//     on a non-zero exit, not on ctx cancellation). A Put whose reader was
//     partly consumed is retried only if the reader can be rewound.
//   - Run's command is wrapped so that cancelling it kills its whole process
//     group even where sshd ignores "signal" requests (OpenSSH does for root
//     logins): a watcher in the remote shell kills the group when the
//     session's stdin reaches EOF. Nothing is written to that stdin.
//   - Commands of a connection run through one remote login shell
//     (session.go): the shell and its rc file start once per host, not once
//     per command. Each command still runs in a process (and process group)
//     of its own, with its own timeout and kill, output and exit status.
//     Hosts without setsid, and Config.PerCommandSessions, get one SSH
//     session per command, wrapped as below. A command sees what the login
//     shell exported (PATH from an rc file, say), not its shell functions,
//     aliases or unexported variables, which `eval` in the login shell
//     itself (the per-command path) would have shown it.
//   - Key material and passphrases never reach an error message.
package ssh
