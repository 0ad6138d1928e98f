package raftstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Errors returned by Apply; callers test them with errors.Is.
var (
	ErrHostLocked        = errors.New("host is held by another deployment")
	ErrUnknownDeployment = errors.New("no such deployment")
	ErrUnknownHost       = errors.New("host is not part of the deployment")
	ErrExists            = errors.New("deployment already exists")
	ErrTerminal          = errors.New("deployment has ended")
	ErrBadCommand        = errors.New("malformed command")
	ErrNotLeader         = errors.New("not the leader")
	ErrNameInUse         = errors.New("a deployment of this name is in progress")
)

// CommandType tags a command in the log. Values are stable: they are on disk.
type CommandType uint8

// Command types.
const (
	CmdCreateDeployment CommandType = 1
	CmdSetHostStage     CommandType = 2
	CmdSetState         CommandType = 3
	CmdRequest          CommandType = 4
	CmdRegisterNode     CommandType = 5
	CmdForgetNode       CommandType = 6
	CmdPutToken         CommandType = 7
	CmdDeleteToken      CommandType = 8
	CmdSpendToken       CommandType = 9
	CmdEnrollAgent      CommandType = 10
	CmdRevokeAgent      CommandType = 11
)

// envelope is the on-disk form of a command: a type tag, a payload version
// (so that old logs still replay after the payload grows) and the payload.
type envelope struct {
	Type    CommandType     `json:"t"`
	Version int             `json:"v"`
	Payload json.RawMessage `json:"p"`
	// Key is the request key of an idempotent write (see WithRequestKey).
	Key string `json:"k,omitempty"`
}

// Command is anything that can be applied to the state.
type Command interface {
	commandType() CommandType
}

// CreateDeployment records a new deployment and locks its hosts. It fails
// with ErrHostLocked when any host is held by another running deployment.
type CreateDeployment struct {
	Deployment Deployment `json:"deployment"`
	At         time.Time  `json:"at"`
}

// SetHostStage moves one host to a stage. The engine applies it before the
// stage's first side effect, so a new leader knows what may be half done.
type SetHostStage struct {
	ID     string `json:"id"`
	Host   string `json:"host"`
	Stage  Stage  `json:"stage"`
	Phase  Phase  `json:"phase"`
	Target string `json:"target"`
	Error  string `json:"error,omitempty"`
	// Output is the bounded output of the command that failed, if any.
	Output string    `json:"output,omitempty"`
	At     time.Time `json:"at"`
}

// SetState changes a deployment's state. Reaching a
// terminal state releases the deployment's host locks.
type SetState struct {
	ID    string          `json:"id"`
	State DeploymentState `json:"state"`
	Error string          `json:"error,omitempty"`
	At    time.Time       `json:"at"`
}

// Request records an operator's request to pause, resume or abort.
type Request struct {
	ID     string    `json:"id"`
	Pause  bool      `json:"pause,omitempty"`
	Resume bool      `json:"resume,omitempty"`
	Abort  bool      `json:"abort,omitempty"`
	At     time.Time `json:"at"`
}

func (CreateDeployment) commandType() CommandType { return CmdCreateDeployment }
func (SetHostStage) commandType() CommandType     { return CmdSetHostStage }
func (SetState) commandType() CommandType         { return CmdSetState }
func (Request) commandType() CommandType          { return CmdRequest }

// Encode serialises a command for the log.
func Encode(c Command) ([]byte, error) { return encode(c, "") }

// encode serialises a command with its request key ("" for none).
func encode(c Command, key string) ([]byte, error) {
	p, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return json.Marshal(envelope{Type: c.commandType(), Version: 1, Payload: p, Key: key})
}

// decode reverses Encode.
func decode(b []byte) (Command, error) {
	c, _, err := decodeKeyed(b)
	return c, err
}

// decodeKeyed reverses encode: the command and its request key.
func decodeKeyed(b []byte) (Command, string, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadCommand, err)
	}
	var c Command
	switch e.Type {
	case CmdCreateDeployment:
		c = &CreateDeployment{}
	case CmdSetHostStage:
		c = &SetHostStage{}
	case CmdSetState:
		c = &SetState{}
	case CmdRequest:
		c = &Request{}
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
	case CmdPrune:
		c = &Prune{}
	default:
		return nil, "", fmt.Errorf("%w: unknown type %d", ErrBadCommand, e.Type)
	}
	if err := json.Unmarshal(e.Payload, c); err != nil {
		return nil, "", fmt.Errorf("%w: type %d: %v", ErrBadCommand, e.Type, err)
	}
	if len(e.Key) > MaxRequestKeyLen {
		return nil, "", fmt.Errorf("%w: request key longer than %d bytes", ErrBadCommand, MaxRequestKeyLen)
	}
	return c, e.Key, nil
}

// apply changes s by one command. It is deterministic: everything it needs
// (times, IDs) is in the command.
func (s *State) apply(c Command) error {
	// Seq counts every command, refused ones too, so it is the same on
	// every node whatever each command's outcome.
	s.Seq++
	switch c := c.(type) {
	case *CreateDeployment:
		return s.create(c)
	case *SetHostStage:
		return s.setHostStage(c)
	case *SetState:
		return s.setState(c)
	case *Request:
		return s.request(c)
	case *RegisterNode:
		return s.registerNode(c)
	case *ForgetNode:
		return s.forgetNode(c)
	case *PutToken:
		return s.putToken(c)
	case *DeleteToken:
		return s.deleteToken(c)
	case *SpendToken:
		return s.spendToken(c)
	case *EnrollAgent:
		return s.enrollAgent(c)
	case *RevokeAgent:
		return s.revokeAgent(c)
	case *Prune:
		return s.prune(c)
	}
	return fmt.Errorf("%w: %T", ErrBadCommand, c)
}

func (s *State) create(c *CreateDeployment) error {
	d := c.Deployment.clone()
	if d.ID == "" || len(d.Batches) == 0 {
		return fmt.Errorf("%w: deployment needs an id and hosts", ErrBadCommand)
	}
	if _, ok := s.Deployments[d.ID]; ok {
		return fmt.Errorf("%s: %w", d.ID, ErrExists)
	}
	for _, other := range s.Deployments {
		if other.Name == d.Name && !other.State.Terminal() {
			return fmt.Errorf("%w: %s is %s", ErrNameInUse, other.ID, other.State)
		}
	}
	names := d.HostNames()
	for _, h := range names {
		if r := s.Hosts[h]; r != nil && r.Lock != "" {
			return fmt.Errorf("%s: %w %s", h, ErrHostLocked, r.Lock)
		}
	}
	if d.Hosts == nil {
		d.Hosts = map[string]*HostProgress{}
	}
	for _, h := range names {
		r := s.Hosts[h]
		if r == nil {
			r = &HostRecord{Name: h}
			s.Hosts[h] = r
		}
		r.Lock = d.ID
		hp := d.Hosts[h]
		if hp == nil {
			hp = &HostProgress{Name: h, Target: d.Version, Phase: PhaseRollout}
			d.Hosts[h] = hp
		}
		if hp.Stage == "" {
			hp.Stage = StagePending
		}
		hp.FromCurrent, hp.FromPrevious = r.Current, r.Previous
		hp.Since = c.At
	}
	if d.State == "" {
		d.State = StateRunning
	}
	d.Created, d.Updated = c.At, c.At
	d.Seq = s.Seq
	s.Deployments[d.ID] = &d
	s.Order = append(s.Order, d.ID)
	s.record(Event{Time: c.At, Deployment: d.ID, Kind: EvCreated, State: d.State, Target: d.Version})
	return nil
}

func (s *State) running(id string) (*Deployment, error) {
	d := s.Deployments[id]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrUnknownDeployment)
	}
	if d.State.Terminal() {
		return nil, fmt.Errorf("%s is %s: %w", id, d.State, ErrTerminal)
	}
	return d, nil
}

func (s *State) setHostStage(c *SetHostStage) error {
	d, err := s.running(c.ID)
	if err != nil {
		return err
	}
	hp := d.Hosts[c.Host]
	if hp == nil {
		return fmt.Errorf("%s in %s: %w", c.Host, c.ID, ErrUnknownHost)
	}
	if s.Hosts[c.Host] == nil {
		return fmt.Errorf("%w: host %s of %s has no record", ErrInconsistent, c.Host, c.ID)
	}
	hp.Stage, hp.Phase, hp.Since = c.Stage, c.Phase, c.At
	if c.Error != "" && hp.Error == "" {
		hp.Error = c.Error
	}
	if c.Stage == StageActivate && c.Phase == PhaseRollout {
		hp.Activated = true
	}
	if c.Stage == StageFailed && c.Phase == PhaseRollout {
		hp.RolloutFailed = true
	}
	if c.Stage == StageSkipped {
		hp.Skipped = c.Error
	}
	if c.Target != "" {
		hp.Target = c.Target
	}
	// A failure is not a side effect: a host refused before its first
	// stage (min_in_service) stays untouched, and needs no rollback.
	switch c.Stage {
	case StagePending, StageSkipped, StageFailed:
	default:
		hp.Touched = true
	}
	if c.Stage == StageDone {
		r := s.Hosts[c.Host]
		switch c.Phase {
		case PhaseRollout:
			switch {
			case d.Kind == KindRollback:
				// An operator's rollback leaves no "previous" to go back
				// to: rolling back again must not revert the revert.
				r.Current, r.Previous = hp.Target, ""
			case r.Current != hp.Target:
				r.Previous, r.Current = r.Current, hp.Target
			}
		case PhaseRollback:
			// Back to exactly what it was before: the failed release never
			// becomes anybody's "previous stable".
			r.Current, r.Previous = hp.FromCurrent, hp.FromPrevious
		}
	}
	d.Updated = c.At
	s.record(Event{Time: c.At, Deployment: d.ID, Kind: EvStage, Host: c.Host, Stage: c.Stage, Phase: c.Phase,
		Target: hp.Target, Error: c.Error, Output: c.Output})
	return nil
}

func (s *State) setState(c *SetState) error {
	d, err := s.running(c.ID)
	if err != nil {
		return err
	}
	d.State, d.Updated = c.State, c.At
	if c.Error != "" {
		d.Error = c.Error
	}
	if c.State == StateRunning || c.State == StatePaused {
		d.PauseRequested = false
	}
	if c.State.Terminal() {
		d.Ended = c.At
		for _, h := range d.HostNames() {
			if r := s.Hosts[h]; r != nil && r.Lock == d.ID {
				r.Lock = ""
			}
		}
	}
	s.record(Event{Time: c.At, Deployment: d.ID, Kind: EvState, State: c.State, Error: c.Error})
	return nil
}

func (s *State) request(c *Request) error {
	d, err := s.running(c.ID)
	if err != nil {
		return err
	}
	switch {
	case c.Abort:
		d.AbortRequested = true
	case c.Pause:
		d.PauseRequested = true
	case c.Resume:
		d.PauseRequested = false
		if d.State == StatePaused {
			d.State = StateRunning
		}
	}
	d.Updated = c.At
	msg := "pause"
	switch {
	case c.Abort:
		msg = "abort"
	case c.Resume:
		msg = "resume"
	}
	s.record(Event{Time: c.At, Deployment: d.ID, Kind: EvRequest, Message: msg, State: d.State})
	return nil
}
