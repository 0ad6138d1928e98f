//go:build !race

package raftstore

const slowdown = 1

const raceDetector = false
