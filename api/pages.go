package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/drover-dev/drover/deploy"
)

// MaxPageSize bounds one page of GET /v1/deployments?limit=N.
const MaxPageSize = 100

// DeploymentPage is one page of the deployment list, newest first. Next,
// when set, is the cursor of the following (older) page.
type DeploymentPage struct {
	Deployments []deploy.Deployment `json:"deployments"`
	Next        string              `json:"next,omitempty"`
}

// listPage serves GET /v1/deployments?limit=N[&before=CURSOR]. Without
// limit the answer is the whole list, oldest first, as before pages
// existed (the cluster keeps a bounded history, so it is bounded too).
func (s *server) listPage(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("limit") {
		return false
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > MaxPageSize {
		writeError(w, fmt.Errorf("%w: limit must be 1 to %d, got %q", ErrBadRequest, MaxPageSize, q.Get("limit")))
		return true
	}
	writeJSON(w, http.StatusOK, page(s.cfg.Deployments.List(), q.Get("before"), limit))
	return true
}

// page cuts ds (oldest first) into the page of up to limit deployments
// older than before (the newest when before is ""). A cursor whose
// deployment was pruned since is past the oldest one kept: the page is
// empty.
func page(ds []deploy.Deployment, before string, limit int) DeploymentPage {
	end := len(ds)
	if before != "" {
		end = slices.IndexFunc(ds, func(d deploy.Deployment) bool { return d.ID == before })
	}
	p := DeploymentPage{Deployments: []deploy.Deployment{}}
	for i := end - 1; i >= 0 && len(p.Deployments) < limit; i-- {
		p.Deployments = append(p.Deployments, ds[i])
	}
	if n := len(p.Deployments); n > 0 && end-n > 0 {
		p.Next = p.Deployments[n-1].ID
	}
	return p
}

// DeploymentsPage returns up to limit deployments (1 to MaxPageSize),
// newest first, older than the cursor before ("" for the newest), and
// the next page's cursor ("" after the last page).
func (c *Client) DeploymentsPage(ctx context.Context, before string, limit int) (DeploymentPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if before != "" {
		q.Set("before", before)
	}
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/v1/deployments", query: q, retry: true})
	if err != nil {
		return DeploymentPage{}, err
	}
	defer resp.Body.Close()
	var p DeploymentPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return DeploymentPage{}, fmt.Errorf("api: GET /v1/deployments: decoding answer: %w", err)
	}
	return p, nil
}

// Deployments returns every deployment the cluster keeps, oldest first,
// fetched a page at a time.
func (c *Client) Deployments(ctx context.Context) ([]deploy.Deployment, error) {
	var all []deploy.Deployment
	before := ""
	for {
		p, err := c.DeploymentsPage(ctx, before, MaxPageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Deployments...)
		if p.Next == "" {
			slices.Reverse(all)
			return all, nil
		}
		before = p.Next
	}
}
