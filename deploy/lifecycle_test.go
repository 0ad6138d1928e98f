package deploy

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	inFlight := map[string]*HostProgress{"a": {Stage: StageDone}, "b": {Stage: StageInstall}}
	settled := map[string]*HostProgress{"a": {Stage: StageDone}, "b": {Stage: StagePending}}
	aborted := &SetState{ID: "d1", State: StateAborted, Error: AbortedByOperator, At: at}
	requested := &Request{ID: "d1", Abort: true, At: at}
	tests := []struct {
		name    string
		state   DeploymentState
		hosts   map[string]*HostProgress
		action  Action
		by      Driver
		want    Command
		wantErr error
	}{
		{"pause", StateRunning, inFlight, ActionPause, Supervised, &Request{ID: "d1", Pause: true, At: at}, nil},
		{"resume", StatePaused, settled, ActionResume, Supervised, &Request{ID: "d1", Resume: true, At: at}, nil},
		{"abort supervised running: requested", StateRunning, inFlight, ActionAbort, Supervised, requested, nil},
		{"abort supervised rolling back: requested", StateRollingBack, inFlight, ActionAbort, Supervised, requested, nil},
		{"abort paused: ends now", StatePaused, settled, ActionAbort, Supervised, aborted, nil},
		{"abort unattended running: ends now, hosts as they are", StateRunning, inFlight, ActionAbort, Unattended, aborted, nil},
		{"abort unattended paused: ends now", StatePaused, settled, ActionAbort, Unattended, aborted, nil},
		{"abort finished", StateSucceeded, settled, ActionAbort, Unattended, nil, ErrTerminal},
		{"pause finished", StateAborted, settled, ActionPause, Supervised, nil, ErrTerminal},
		{"pause unattended: nothing runs it", StateRunning, settled, ActionPause, Unattended, nil, ErrNotRunning},
		{"unknown action", StateRunning, settled, "promote", Supervised, nil, ErrUnknownAction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Deployment{ID: "d1", State: tc.state, Hosts: tc.hosts}
			got, err := Decide(&d, tc.action, tc.by, at)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("command = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// A recorded abort request: an engine at a safe point honours it; an
// engine that cannot run the deployment ends it only with every host
// settled; without a request neither ends anything.
func TestAbortNowRequested(t *testing.T) {
	inFlight := map[string]*HostProgress{"a": {Stage: StageEnable}}
	settled := map[string]*HostProgress{"a": {Stage: StageFailed}}
	tests := []struct {
		name      string
		state     DeploymentState
		requested bool
		hosts     map[string]*HostProgress
		by        Driver
		want      bool
	}{
		{"safe point, requested", StateRunning, true, settled, SafePoint, true},
		{"safe point, not requested", StateRunning, false, settled, SafePoint, false},
		{"stuck, requested, settled", StateRunning, true, settled, Stuck, true},
		{"stuck, requested, in flight", StateRollingBack, true, inFlight, Stuck, false},
		{"stuck, not requested", StateRunning, false, settled, Stuck, false},
		{"stuck, paused, not requested", StatePaused, false, settled, Stuck, false},
		{"ended", StateAborted, true, settled, Stuck, false},
		{"supervised running, requested earlier", StateRunning, true, settled, Supervised, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Deployment{ID: "d1", State: tc.state, AbortRequested: tc.requested, Hosts: tc.hosts}
			if got := AbortNow(&d, tc.by); got != tc.want {
				t.Errorf("AbortNow = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResumable(t *testing.T) {
	tests := []struct {
		state DeploymentState
		by    Driver
		want  bool
	}{
		{StatePaused, Supervised, true},
		{StateRunning, Supervised, false}, // its engine runs it
		{StateRollingBack, Supervised, false},
		{StateSucceeded, Supervised, false},
		{StatePaused, Unattended, true},
		{StateRunning, Unattended, true}, // interrupted
		{StateRollingBack, Unattended, true},
		{StateFailed, Unattended, false},
		{StateAborted, Unattended, false},
	}
	for _, tc := range tests {
		d := Deployment{State: tc.state}
		if got := Resumable(&d, tc.by); got != tc.want {
			t.Errorf("Resumable(%s, driver %d) = %v, want %v", tc.state, tc.by, got, tc.want)
		}
	}
}
