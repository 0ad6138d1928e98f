package haproxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/drover-dev/drover/internal/notify"
)

// poller reads `show stat` for every caller waiting on one HAProxy: one read
// per PollInterval serves all of them, however many hosts a batch drains or
// enables at once. It runs only while someone waits.
type poller struct {
	d *Driver

	mu      sync.Mutex
	waiters map[string]int // backend -> callers waiting on one of its servers
	running bool
	started uint64 // reads begun so far; a read's sequence number
	last    snapshot
	giveUp  chan struct{} // closed once nobody waits: the read in flight stops retrying
	changed notify.Signal // fired after each read
}

// snapshot is the result of one read.
type snapshot struct {
	seq     uint64
	rows    map[string]statRow // by "backend/server"
	backend map[string]bool    // backends present in the reply
	err     error
}

// row finds a server, or says which of backend and server is unknown.
func (s snapshot) row(backend, name string) (statRow, error) {
	if r, ok := s.rows[backend+"/"+name]; ok {
		return r, nil
	}
	if !s.backend[backend] {
		return statRow{}, nameServer(errNoBackend, backend, name)
	}
	return statRow{}, nameServer(errNoServer, backend, name)
}

// watch calls fn with every snapshot whose read began after watch was
// called (so it reflects any change the caller made before), until fn
// reports done or fails, or ctx ends. Snapshots that failed reach fn too:
// it decides what to retry.
func (p *poller) watch(ctx context.Context, backend string, fn func(snapshot) (bool, error)) error {
	p.mu.Lock()
	need := p.started + 1
	if p.waiters == nil {
		p.waiters = map[string]int{}
	}
	p.waiters[backend]++
	if !p.running {
		p.running = true
		go p.loop()
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.waiters[backend]--; p.waiters[backend] == 0 {
			delete(p.waiters, backend)
		}
		if len(p.waiters) == 0 && p.giveUp != nil {
			close(p.giveUp)
			p.giveUp = nil
		}
		p.mu.Unlock()
	}()
	for {
		ch := p.changed.C()
		p.mu.Lock()
		s := p.last
		p.mu.Unlock()
		if s.seq >= need {
			need = s.seq + 1
			if done, err := fn(s); done || err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctxErr(ctx)
		case <-ch:
		}
	}
}

// loop reads while anybody waits, one read every PollInterval.
func (p *poller) loop() {
	tick := time.NewTicker(p.d.cfg.PollInterval)
	defer tick.Stop()
	for {
		p.mu.Lock()
		if len(p.waiters) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		// One backend: ask for its servers only. Several: ask for all.
		target := "-1"
		if len(p.waiters) == 1 {
			for b := range p.waiters {
				target = b
			}
		}
		p.started++
		seq := p.started
		giveUp := make(chan struct{})
		p.giveUp = giveUp
		p.mu.Unlock()

		s := p.read(giveUp, target)
		s.seq = seq
		p.mu.Lock()
		p.last = s
		if p.giveUp == giveUp {
			p.giveUp = nil
		}
		p.mu.Unlock()
		p.changed.Fire()
		<-tick.C
	}
}

// read takes one snapshot of backend's servers ("-1": every backend).
func (p *poller) read(giveUp <-chan struct{}, backend string) snapshot {
	reply, err := p.d.commandUntil(context.Background(), giveUp, "show stat "+backend+" 4 -1")
	if err != nil {
		return snapshot{err: err}
	}
	rows, err := parseStat(reply)
	if errors.Is(err, errNoBackend) {
		// The one backend asked for does not exist: an empty snapshot lets
		// each waiter name what it looked for.
		return snapshot{}
	}
	if err != nil {
		return snapshot{err: err}
	}
	s := snapshot{rows: make(map[string]statRow, len(rows)), backend: map[string]bool{}}
	for _, r := range rows {
		s.rows[r.backend+"/"+r.server] = r
		s.backend[r.backend] = true
	}
	return s
}
