package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nsPrefix starts every namespace the lab creates: drl<ID>-<node>.
const nsPrefix = "drl"

var nsNameRE = regexp.MustCompile(`^drl([0-9a-f]{4,16})-[a-z0-9-]+$`)

// nsName is the namespace of a node in lab id.
func nsName(id, node string) string { return nsPrefix + id + "-" + node }

// nsID returns the lab ID of a lab namespace name, or "" for other names.
func nsID(name string) string {
	m := nsNameRE.FindStringSubmatch(name)
	if m == nil {
		return ""
	}
	return m[1]
}

// listNamespaces returns the names of all named network namespaces.
func listNamespaces(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// labNamespaces returns the namespaces of lab id that exist now.
func labNamespaces(ctx context.Context, id string) ([]string, error) {
	all, err := listNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range all {
		if nsID(n) == id {
			out = append(out, n)
		}
	}
	return out, nil
}

// nsPids lists the processes whose network namespace is ns (zombies have
// none, so they are never listed).
func nsPids(ctx context.Context, ns string) ([]int, error) {
	out, err := run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// killNamespace SIGKILLs every process in ns until none remains. Processes
// may fork while we kill (sshd accepting a connection), hence the loop.
func killNamespace(ctx context.Context, ns string) error {
	for range 20 {
		pids, err := nsPids(ctx, ns)
		if err != nil {
			if !nsExists(ns) {
				return nil
			}
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		waitExited(pids, 5*time.Second)
	}
	return fmt.Errorf("namespace %s: processes keep appearing", ns)
}

func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

// deleteNamespace removes ns; a missing namespace is not an error.
func deleteNamespace(ctx context.Context, ns string) error {
	if !nsExists(ns) {
		return nil
	}
	if _, err := run(ctx, "ip", "netns", "delete", ns); err != nil && nsExists(ns) {
		return err
	}
	return nil
}

// destroyNamespaces kills every process in the namespaces, then deletes them.
// Killing everything first matters: a namespace deleted while a process
// still holds it lives on, invisible to `ip netns`.
func destroyNamespaces(ctx context.Context, names []string) error {
	var errs []error
	for _, ns := range names {
		if err := killNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range names {
		if err := deleteNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// vethName is the bridge-side interface of a node: unique per run, at most
// 15 bytes (IFNAMSIZ-1).
func vethName(id string, index int, node string) string {
	if n := "v" + id + "-" + node; len(n) <= 15 {
		return n
	}
	return fmt.Sprintf("v%s-%d", id, index)
}

// bridgeName is the bridge in the control namespace.
func bridgeName(id string) string { return "br" + id }

// ipBatch runs `ip [-n ns] -batch -` with the given lines.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := runInput(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	return err
}
