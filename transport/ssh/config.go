package ssh

import (
	"time"

	"github.com/drover-dev/drover/plans"
)

// Defaults applied by NewDialer to zero fields.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	// keepAliveMaxMissed replies may go missing before the connection is
	// considered dead and closed.
	keepAliveMaxMissed = 3
)

// Config is how the Dialer authenticates and verifies hosts.
type Config struct {
	User         string // default: the current user
	IdentityFile string // private key file; may be empty when Agent provides keys
	KnownHosts   string // default: ~/.ssh/known_hosts
	// AcceptNew records the key of a host that has no known_hosts entry yet
	// and accepts it. A changed key is refused regardless.
	AcceptNew bool
	// ConnectTimeout bounds TCP connect plus SSH handshake (default 10s).
	ConnectTimeout time.Duration
	// KeepAlive is the interval between keepalive@openssh.com requests
	// (default 15s; negative disables). After 3 unanswered ones the
	// connection is closed and the next call redials.
	KeepAlive time.Duration
	// Agent uses ssh-agent keys when SSH_AUTH_SOCK is set.
	Agent bool
	// PerCommandSessions runs each command in an SSH session of its own
	// (one login shell start each) instead of through one shell session
	// per connection (session.go). For hosts whose ForceCommand must see
	// every command.
	PerCommandSessions bool
}

// ConfigFromPlan maps a plan's ssh section onto a Config. The plan's
// command_timeout is not part of it: the engine bounds each call with ctx.
func ConfigFromPlan(s plans.SSH) Config {
	return Config{
		User:           s.User,
		IdentityFile:   s.IdentityFile,
		KnownHosts:     s.KnownHosts,
		AcceptNew:      s.HostKeyChecking == plans.HostKeyAcceptNew,
		ConnectTimeout: s.ConnectTimeout,
		KeepAlive:      DefaultKeepAlive,
		Agent:          true,

		PerCommandSessions: s.SessionPerCommand,
	}
}
