package hub_test

import (
	"github.com/drover-dev/drover/agent/hub"
	"github.com/drover-dev/drover/orchestrator"
)

// An agent host is driven by the engine like any other.
var _ orchestrator.Host = (*hub.AgentHost)(nil)
