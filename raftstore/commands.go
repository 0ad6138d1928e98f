package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drover-dev/drover/deploy"
)

// ErrNotLeader means this node does not lead: nothing was applied, and the
// caller may try the leader.
var ErrNotLeader = errors.New("not the leader")

// The store's own command types, beside the ledger's (deploy.CmdCreateDeployment...).
// Values are stable: they are on disk.
const (
	CmdRegisterNode deploy.CommandType = 5
	CmdForgetNode   deploy.CommandType = 6
	CmdPutToken     deploy.CommandType = 7
	CmdDeleteToken  deploy.CommandType = 8
	CmdSpendToken   deploy.CommandType = 9
	CmdEnrollAgent  deploy.CommandType = 10
	CmdRevokeAgent  deploy.CommandType = 11
)

// envelope is the on-disk form of a command: a type tag, a payload version
// (so that old logs still replay after the payload grows) and the payload.
type envelope struct {
	Type    deploy.CommandType `json:"t"`
	Version int                `json:"v"`
	Payload json.RawMessage    `json:"p"`
	// Key is the request key of an idempotent write (see WithRequestKey).
	Key string `json:"k,omitempty"`
}

// Encode serialises a command for the log.
func Encode(c deploy.Command) ([]byte, error) { return encode(c, "") }

// encode serialises a command with its request key ("" for none).
func encode(c deploy.Command, key string) ([]byte, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return json.Marshal(envelope{Type: c.CommandType(), Version: 1, Payload: p, Key: key})
}

// decode reverses Encode.
func decode(b []byte) (deploy.Command, error) {
	c, _, err := decodeKeyed(b)
	return c, err
}

// decodeKeyed reverses encode: the command and its request key.
func decodeKeyed(b []byte) (deploy.Command, string, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, "", fmt.Errorf("%w: %v", deploy.ErrBadCommand, err)
	}
	c := deploy.NewCommand(e.Type)
	switch e.Type {
	case CmdRegisterNode:
		c = &RegisterNode{}
	case CmdForgetNode:
		c = &ForgetNode{}
	case CmdPutToken:
		c = &PutToken{}
	case CmdDeleteToken:
		c = &DeleteToken{}
	case CmdSpendToken:
		c = &SpendToken{}
	case CmdEnrollAgent:
		c = &EnrollAgent{}
	case CmdRevokeAgent:
		c = &RevokeAgent{}
	}
	if c == nil {
		return nil, "", fmt.Errorf("%w: unknown type %d", deploy.ErrBadCommand, e.Type)
	}
	if err := json.Unmarshal(e.Payload, c); err != nil {
		return nil, "", fmt.Errorf("%w: type %d: %v", deploy.ErrBadCommand, e.Type, err)
	}
	if len(e.Key) > MaxRequestKeyLen {
		return nil, "", fmt.Errorf("%w: request key longer than %d bytes", deploy.ErrBadCommand, MaxRequestKeyLen)
	}
	return c, e.Key, nil
}

// apply changes s by one command: the store's own commands here, the
// ledger's in deploy.Ledger.Apply. It is deterministic: everything it
// needs (times, IDs) is in the command.
func (s *State) apply(c deploy.Command) error {
	var own func() error
	switch c := c.(type) {
	case *RegisterNode:
		own = func() error { return s.registerNode(c) }
	case *ForgetNode:
		own = func() error { return s.forgetNode(c) }
	case *PutToken:
		own = func() error { return s.putToken(c) }
	case *DeleteToken:
		own = func() error { return s.deleteToken(c) }
	case *SpendToken:
		own = func() error { return s.spendToken(c) }
	case *EnrollAgent:
		own = func() error { return s.enrollAgent(c) }
	case *RevokeAgent:
		own = func() error { return s.revokeAgent(c) }
	case *deploy.Prune:
		// The ledger prunes deployments; the tokens are the store's.
		return s.prune(c)
	default:
		return s.Ledger.Apply(c)
	}
	// Seq counts every command, the store's own too, so that it is the
	// same on every node whatever each command's outcome.
	s.Seq++
	return own()
}
