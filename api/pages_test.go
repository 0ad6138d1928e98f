package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/drover-dev/drover/deploy"
)

// GET /v1/deployments pages, newest first; the client walks the pages
// (security.md, finding 9).
func TestDeploymentPages(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	st := newStore()
	var want []string
	for i := 1; i <= 7; i++ {
		id := fmt.Sprintf("d%d", i)
		st.addDeployment(id)
		want = append(want, id)
	}
	l := startNode(t, p, st, "n1", true)
	c := newTestClient(t, p, tokRead, l.addr)

	var got []string
	before, pages := "", 0
	for {
		pg, err := c.DeploymentsPage(ctx, before, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(pg.Deployments) > 3 {
			t.Fatalf("page of %d, limit 3", len(pg.Deployments))
		}
		for _, d := range pg.Deployments {
			got = append(got, d.ID)
		}
		if pg.Next == "" {
			break
		}
		before = pg.Next
	}
	newestFirst := slices.Clone(want)
	slices.Reverse(newestFirst)
	if !slices.Equal(got, newestFirst) || pages != 3 {
		t.Fatalf("pages gave %v in %d pages, want %v in 3", got, pages, newestFirst)
	}
	all, err := c.Deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range all {
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("Deployments = %v, want %v (oldest first)", ids, want)
	}
	for _, limit := range []int{0, -1, MaxPageSize + 1} {
		var e *Error
		if _, err := c.DeploymentsPage(ctx, "", limit); !errors.As(err, &e) || e.Status != http.StatusBadRequest {
			t.Errorf("limit %d: %v, want a 400", limit, err)
		}
	}
}

func TestPage(t *testing.T) {
	ds := []deploy.Deployment{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	tests := []struct {
		before string
		limit  int
		want   []string
		next   string
	}{
		{"", 2, []string{"c", "b"}, "b"},
		{"b", 2, []string{"a"}, ""},
		{"", 3, []string{"c", "b", "a"}, ""},
		{"a", 5, nil, ""},
		{"pruned", 5, nil, ""},
	}
	for _, tc := range tests {
		p := page(ds, tc.before, tc.limit)
		var got []string
		for _, d := range p.Deployments {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, tc.want) || p.Next != tc.next {
			t.Errorf("page(before %q, limit %d) = %v next %q, want %v next %q", tc.before, tc.limit, got, p.Next, tc.want, tc.next)
		}
	}
}
