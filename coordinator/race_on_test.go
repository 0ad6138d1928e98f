//go:build race

package coordinator

// slowdown stretches the test clusters' Raft timing under the race
// detector, which makes every node several times slower: with the normal
// test timing a leader on a loaded 2-core machine loses its lease while a
// new voter catches up.
const slowdown = 4
