// Package wire is the protocol between a drover agent and the coordinator
// cluster. The agent dials out (so hosts behind NAT work): a WebSocket at
// ConnectPath on the leader's API address, mutual TLS with the agent's
// certificate (role agent, common name = the agent's name). Each message is
// one JSON Frame. Enrollment is a plain HTTPS POST at EnrollPath.
//
// The conversation:
//
//	agent -> Hello (name, version, the highest term seen, actions lost to a restart)
//	coordinator -> Action (run | put | check), each with an ID and the Raft term
//	coordinator -> Chunk... (put only: the file's bytes, then a last chunk)
//	agent -> Output... (run only: output as it comes, bounded)
//	agent -> Result (exit code, error; Rejected when the term is stale)
//	either -> Ping every PingInterval; a side silent for DeadAfter is gone
//
// Several actions may be in flight on one connection (the engine never
// runs two on one host at once, but health checks and commands of one host
// are independent requests).
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/drover-dev/drover/internal/duration"
)

// Paths on a coordinator's API address.
const (
	ConnectPath = "/v1/agent/connect"
	EnrollPath  = "/v1/agent/enroll"
)

// Timing of the connection.
const (
	PingInterval = 5 * time.Second
	DeadAfter    = 15 * time.Second
)

// Limits.
const (
	// MaxOutput bounds the output an agent sends back for one action; what
	// is beyond it is dropped and Result.Truncated is set.
	MaxOutput = 64 << 10
	// ChunkSize bounds the bytes of one Chunk.
	ChunkSize = 512 << 10
	// MaxFrame bounds one encoded frame (a chunk in base64 plus envelope).
	MaxFrame = 1 << 20
)

// LeaderHeader, on a 503 answer to ConnectPath or EnrollPath from a node
// that does not lead, names the leader's API address ("" when unknown).
const LeaderHeader = "X-Drover-Leader"

// Type tags a Frame.
type Type string

// Frame types.
const (
	TypeHello  Type = "hello"
	TypeAction Type = "action"
	TypeChunk  Type = "chunk"
	TypeOutput Type = "output"
	TypeResult Type = "result"
	TypePing   Type = "ping"
)

// Frame is one message; exactly the field named by Type is set.
type Frame struct {
	Type   Type    `json:"type"`
	Hello  *Hello  `json:"hello,omitempty"`
	Action *Action `json:"action,omitempty"`
	Chunk  *Chunk  `json:"chunk,omitempty"`
	Output *Output `json:"output,omitempty"`
	Result *Result `json:"result,omitempty"`
}

// ErrMalformed: a frame that is not JSON, has an unknown type, or does not
// carry exactly the field its type names.
var ErrMalformed = errors.New("malformed frame")

// Decode reads one frame and checks its shape: a known type with exactly
// the field it names set (none for a ping). Both sides decode every frame
// with it, so that a handler never meets a frame it was not written for.
func Decode(data []byte) (Frame, error) {
	var f Frame
	if len(data) > MaxFrame {
		return f, fmt.Errorf("%w: %d bytes, the limit is %d", ErrMalformed, len(data), MaxFrame)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return Frame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	set := map[Type]bool{TypeHello: f.Hello != nil, TypeAction: f.Action != nil, TypeChunk: f.Chunk != nil,
		TypeOutput: f.Output != nil, TypeResult: f.Result != nil, TypePing: false}
	if _, known := set[f.Type]; !known {
		return Frame{}, fmt.Errorf("%w: unknown type %q", ErrMalformed, f.Type)
	}
	for t, has := range set {
		if want := t == f.Type && t != TypePing; has != want {
			return Frame{}, fmt.Errorf("%w: a %q frame must carry its %s field and no other", ErrMalformed, f.Type, f.Type)
		}
	}
	return f, nil
}

// Hello is the agent's first frame on every connection.
type Hello struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	Hostname  string   `json:"hostname"`
	Addresses []string `json:"addresses,omitempty"`
	// MaxTerm is the highest Raft term the agent has accepted an action
	// under; it rejects anything older (fencing of deposed leaders).
	MaxTerm uint64 `json:"max_term"`
	// Lost lists actions that were running when the agent stopped: they
	// may have been half done and are reported lost, never done.
	Lost []string `json:"lost,omitempty"`
}

// Kind says what an Action does.
type Kind string

// Action kinds.
const (
	KindRun   Kind = "run"   // run Command with /bin/sh -c
	KindPut   Kind = "put"   // write a file from the chunks that follow
	KindCheck Kind = "check" // a health check made from the host itself
)

// Action is a request from the leader.
type Action struct {
	ID   string `json:"id"`
	Term uint64 `json:"term"`
	Kind Kind   `json:"kind"`
	// Timeout bounds the action on the agent (0: none beyond the connection).
	Timeout Duration `json:"timeout,omitempty"`

	// run
	Command string `json:"command,omitempty"`
	// Streams asks for stderr apart from stdout (Output.Stderr), each
	// bounded by MaxOutput; without it the two are one stream. An agent
	// that does not know the field sends one stream.
	Streams bool `json:"streams,omitempty"`

	// put: the file is written to a temp file beside Path, checked
	// against SHA256 and Size, then renamed over Path with Mode.
	Path   string `json:"path,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`

	// check
	Check *Check `json:"check,omitempty"`
}

// Check is a health check the agent makes locally: exactly one of HTTP
// and TCP is set.
type Check struct {
	HTTP         string `json:"http,omitempty"` // URL
	Status       int    `json:"status,omitempty"`
	BodyContains string `json:"body_contains,omitempty"`
	TCP          string `json:"tcp,omitempty"` // host:port
}

// Chunk is part of a put's file. The last one has EOF set (and may be
// empty).
type Chunk struct {
	ID   string `json:"id"`
	Data []byte `json:"data,omitempty"`
	EOF  bool   `json:"eof,omitempty"`
}

// Output is part of a run's output: its combined stdout and stderr, or,
// when the action asked for Streams, of its stdout or (Stderr) its stderr.
type Output struct {
	ID     string `json:"id"`
	Data   []byte `json:"data"`
	Stderr bool   `json:"stderr,omitempty"`
}

// Result ends an action.
type Result struct {
	ID       string `json:"id"`
	ExitCode int    `json:"exit_code"` // run: the command's exit status
	// Error says why the action failed (a non-zero exit, a timeout, a
	// checksum mismatch, an unhealthy check); "" means it succeeded.
	Error string `json:"error,omitempty"`
	// Rejected: the action's term is older than one the agent has seen.
	Rejected bool `json:"rejected,omitempty"`
	// Lost: the agent restarted while the action ran.
	Lost      bool `json:"lost,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
	// TimedOut: the action's own timeout ended it. The coordinator sets
	// that timeout from its deadline, so this tells "the time given ran
	// out" apart from a failure the host reported.
	TimedOut bool `json:"timed_out,omitempty"`
}

// EnrollRequest is the agent's one-time exchange of a join token for a
// certificate. The agent keeps its private key; it sends its public key.
type EnrollRequest struct {
	Name      string `json:"name"`
	Token     string `json:"token"`
	PublicKey []byte `json:"public_key"` // PKIX, DER
}

// EnrollResponse carries the agent's certificate and the cluster CA.
type EnrollResponse struct {
	Certificate []byte `json:"certificate"` // PEM
	CA          []byte `json:"ca"`          // PEM
}

// Duration is a time.Duration that travels as a string ("30s").
type Duration = duration.Duration
