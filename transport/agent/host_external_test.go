package agent_test

import (
	"github.com/drover-dev/drover/orchestrator"
	hub "github.com/drover-dev/drover/transport/agent"
)

// An agent host is driven by the engine like any other.
var _ orchestrator.Host = (*hub.AgentHost)(nil)
