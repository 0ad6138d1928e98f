//go:build race

package raftstore

// slowdown stretches the test clusters' Raft timing under the race
// detector, which makes every node several times slower: with the normal
// test timing a leader on a loaded 2-core machine loses its lease while a
// new voter catches up.
const slowdown = 4

// raceDetector: hashicorp/raft v1.7.3 reads a follower's peer without its
// lock when it logs a failed pipelined append (replication.go:521), while
// a voter whose address changed is updated under it (raft.go:624). That
// is upstream's race, hit by tests that replace a voter's address: they
// run without the detector (make test runs them in a separate pass).
const raceDetector = true
