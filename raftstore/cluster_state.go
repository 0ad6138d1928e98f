package raftstore

import (
	"fmt"
	"time"

	"github.com/drover-dev/drover/deploy"
)

// Node is a coordinator as the cluster knows it: its Raft address (also in
// raft's configuration) and its HTTPS API address, which raft does not
// carry but followers need to forward requests to the leader.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// TokenRole is what an API token may do.
type TokenRole string

// Token roles.
const (
	RoleManage TokenRole = "manage" // everything, including submitting and tokens
	RoleRead   TokenRole = "read"   // status, history, events, members
	// RoleAgentJoin is a single-use agent enrollment token.
	RoleAgentJoin TokenRole = "agent-join"
)

// Token is an API credential. Only its hash is replicated: a token's
// clear text exists once, in the answer to whoever created it.
type Token struct {
	Name    string    `json:"name"`
	Role    TokenRole `json:"role"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	// Expires, when set, is compared with the time of the command that
	// uses the token (never with a clock inside Apply).
	Expires time.Time `json:"expires,omitzero"`
	Used    bool      `json:"used,omitempty"` // single-use tokens: spent
	UsedAt  time.Time `json:"used_at,omitzero"`
	// Agent binds an agent-join token to the one agent name it may
	// enroll; Replace lets it enroll a name that is already enrolled
	// (revoked or not). Tokens made before names were bound have no Agent
	// and may only enroll new names.
	Agent   string `json:"agent,omitempty"`
	Replace bool   `json:"replace,omitempty"`
}

// Spendable says whether t may be spent at time at, as a token of role,
// to enroll agent (when role is RoleAgentJoin) given whether that name is
// enrolled already. It is the one rule, applied by the coordinator before
// it writes anything and again in Apply, where the answer is final.
func (t Token) Spendable(role TokenRole, agent string, enrolled bool, at time.Time) error {
	switch {
	case t.Role != role:
		return ErrNoToken
	case t.Used:
		return ErrTokenSpent
	case !t.Expires.IsZero() && !at.Before(t.Expires):
		return ErrTokenExpired
	case role != RoleAgentJoin:
		return nil
	case t.Agent != "" && t.Agent != agent:
		return fmt.Errorf("%w: it was made for agent %q, not %q", ErrTokenAgent, t.Agent, agent)
	case enrolled && !t.Replace:
		return fmt.Errorf("agent %s: %w", agent, ErrAgentEnrolled)
	}
	return nil
}

// RegisterNode records (or updates) a coordinator's addresses.
type RegisterNode struct {
	Node Node `json:"node"`
}

// ForgetNode drops a coordinator removed from the cluster.
type ForgetNode struct {
	ID string `json:"id"`
}

// PutToken stores a token's hash. With IfNone it only applies when no
// token of that role exists yet: the bootstrap token, offered by every
// node started with it, is stored once.
type PutToken struct {
	Token  Token `json:"token"`
	IfNone bool  `json:"if_none,omitempty"`
}

// DeleteToken revokes a token by name.
type DeleteToken struct {
	Name string `json:"name"`
}

// SpendToken marks a single-use token of Role as used; it fails with
// ErrTokenSpent or ErrTokenExpired (against At) so that exactly one
// presenter wins, and with ErrNoToken for a token of another role.
type SpendToken struct {
	Hash string    `json:"hash"`
	Role TokenRole `json:"role"`
	At   time.Time `json:"at"`
	// Agent is the name an agent-join token is spent to enroll.
	Agent string `json:"agent,omitempty"`
}

// Agent is an enrolled host agent. Serial is its current certificate's
// serial number (hex): a re-enrolled agent's old certificate is refused.
type Agent struct {
	Name     string    `json:"name"`
	Serial   string    `json:"serial"`
	Enrolled time.Time `json:"enrolled"`
	Revoked  bool      `json:"revoked,omitempty"`
}

// EnrollAgent records an agent's certificate (a new enrollment replaces
// the previous one, and lifts a revocation: it took a fresh join token).
type EnrollAgent struct {
	Name   string    `json:"name"`
	Serial string    `json:"serial"`
	At     time.Time `json:"at"`
}

// RevokeAgent refuses an agent's certificate from now on.
type RevokeAgent struct {
	Name string `json:"name"`
}

// CommandType implements deploy.Command.
func (EnrollAgent) CommandType() deploy.CommandType { return CmdEnrollAgent }

// CommandType implements deploy.Command.
func (RevokeAgent) CommandType() deploy.CommandType { return CmdRevokeAgent }

// ErrUnknownAgent means no agent of that name was ever enrolled.
var ErrUnknownAgent = fmt.Errorf("no such agent")

func (s *State) enrollAgent(c *EnrollAgent) error {
	if c.Name == "" || c.Serial == "" {
		return fmt.Errorf("%w: agent needs a name and a serial", deploy.ErrBadCommand)
	}
	s.Agents[c.Name] = &Agent{Name: c.Name, Serial: c.Serial, Enrolled: c.At}
	return nil
}

func (s *State) revokeAgent(c *RevokeAgent) error {
	a := s.Agents[c.Name]
	if a == nil {
		return fmt.Errorf("agent %s: %w", c.Name, ErrUnknownAgent)
	}
	a.Revoked = true
	return nil
}

// Token errors.
var (
	ErrTokenSpent   = fmt.Errorf("token already used")
	ErrTokenExpired = fmt.Errorf("token expired")
	ErrNoToken      = fmt.Errorf("no such token")
	// ErrTokenAgent: a join token presented for another agent name.
	ErrTokenAgent = fmt.Errorf("join token is bound to another agent name")
	// ErrAgentEnrolled: the name is enrolled (or revoked) and the join
	// token does not allow replacing it.
	ErrAgentEnrolled = fmt.Errorf("already enrolled, and the join token does not allow replacing it")
)

// CommandType implements deploy.Command (for the store's own commands).
func (RegisterNode) CommandType() deploy.CommandType { return CmdRegisterNode }
func (ForgetNode) CommandType() deploy.CommandType   { return CmdForgetNode }
func (PutToken) CommandType() deploy.CommandType     { return CmdPutToken }
func (DeleteToken) CommandType() deploy.CommandType  { return CmdDeleteToken }
func (SpendToken) CommandType() deploy.CommandType   { return CmdSpendToken }

func (s *State) registerNode(c *RegisterNode) error {
	if c.Node.ID == "" {
		return fmt.Errorf("%w: node needs an id", deploy.ErrBadCommand)
	}
	// An address now used by another id belongs to a replaced node.
	for id, n := range s.Nodes {
		if id != c.Node.ID && (n.RaftAddr == c.Node.RaftAddr || n.HTTPAddr == c.Node.HTTPAddr) {
			delete(s.Nodes, id)
		}
	}
	n := c.Node
	s.Nodes[n.ID] = &n
	return nil
}

func (s *State) forgetNode(c *ForgetNode) error {
	delete(s.Nodes, c.ID)
	return nil
}

func (s *State) putToken(c *PutToken) error {
	t := c.Token
	if t.Name == "" || t.Hash == "" || t.Role == "" {
		return fmt.Errorf("%w: token needs a name, a role and a hash", deploy.ErrBadCommand)
	}
	if c.IfNone {
		for _, o := range s.Tokens {
			if o.Role == t.Role {
				return nil
			}
		}
	}
	if _, ok := s.Tokens[t.Name]; ok {
		return fmt.Errorf("token %s: %w", t.Name, deploy.ErrExists)
	}
	s.Tokens[t.Name] = &t
	return nil
}

func (s *State) deleteToken(c *DeleteToken) error {
	if _, ok := s.Tokens[c.Name]; !ok {
		return fmt.Errorf("token %s: %w", c.Name, ErrNoToken)
	}
	delete(s.Tokens, c.Name)
	return nil
}

func (s *State) spendToken(c *SpendToken) error {
	for _, t := range s.Tokens {
		if t.Hash != c.Hash || t.Role != c.Role {
			continue
		}
		_, enrolled := s.Agents[c.Agent]
		if err := t.Spendable(c.Role, c.Agent, enrolled, c.At); err != nil {
			return err
		}
		t.Used, t.UsedAt = true, c.At
		return nil
	}
	return ErrNoToken
}
