package haproxy

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"testing"
)

func TestCanaryWeights(t *testing.T) {
	ten := map[string]int{}
	for i := 1; i <= 10; i++ {
		ten[fmt.Sprintf("web/web%d", i)] = 1
	}
	for _, tc := range []struct {
		name    string
		current map[string]int
		canary  []string
		share   float64
		err     error
	}{
		{name: "1 of 10 at 10%", current: ten, canary: []string{"web/web1"}, share: 0.10},
		{name: "1 of 10 at 5%", current: ten, canary: []string{"web/web1"}, share: 0.05},
		{name: "2 of 10 at 1%", current: ten, canary: []string{"web/web1", "web/web2"}, share: 0.01},
		{name: "uneven weights keep their proportions", current: map[string]int{"b/a": 3, "b/b": 1, "b/c": 2}, canary: []string{"b/c"}, share: 0.2},
		{name: "a server at 0 stays at 0", current: map[string]int{"b/a": 1, "b/b": 0, "b/c": 1, "b/d": 1}, canary: []string{"b/a"}, share: 0.25},
		{name: "too fine a share", current: map[string]int{"b/a": 256, "b/b": 256}, canary: []string{"b/a"}, share: 0.001, err: ErrNoCanaryShare},
		{name: "no other server", current: map[string]int{"b/a": 1}, canary: []string{"b/a"}, share: 0.1, err: ErrNoCanaryShare},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.current)
			w, err := CanaryWeights(tc.current, tc.canary, tc.share)
			if !maps.Equal(before, tc.current) {
				t.Fatal("the current weights were changed")
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			canary, total := 0, 0
			for s, v := range w {
				if v < 0 || v > MaxWeight {
					t.Errorf("%s weight %d", s, v)
				}
				total += v
			}
			for _, c := range tc.canary {
				canary += w[c]
			}
			if got := float64(canary) / float64(total); math.Abs(got-tc.share) > 0.005 {
				t.Errorf("weights %v give the canary %.4f, want %.4f", w, got, tc.share)
			}
			// The others keep their proportions; servers at 0 stay at 0.
			var ref string
			for s, v := range tc.current {
				isCanary := false
				for _, c := range tc.canary {
					isCanary = isCanary || c == s
				}
				switch {
				case isCanary:
				case v == 0:
					if w[s] != 0 {
						t.Errorf("%s was at 0, now %d", s, w[s])
					}
				case ref == "":
					ref = s
				case w[s]*tc.current[ref] != w[ref]*v:
					t.Errorf("%s and %s lost their proportions: %v", s, ref, w)
				}
			}
		})
	}
}
