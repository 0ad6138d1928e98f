//go:build !race

package coordinator

const slowdown = 1
