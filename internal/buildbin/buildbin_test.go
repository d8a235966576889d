package buildbin

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestPathPrebuilt(t *testing.T) {
	t.Setenv(envVar, "/nonexistent/mount-s3")
	p, err := Path(context.Background(), false, nil)
	if err != nil || p != "/nonexistent/mount-s3" {
		t.Fatalf("Path = %q, %v; want $%s", p, err, envVar)
	}
}

func TestBuildOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mount-s3")
	}
	t.Cleanup(Cleanup)
	var log bytes.Buffer
	p1, err := Build(context.Background(), false, &log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "building mount-s3: go build -o "+p1) {
		t.Errorf("log = %q", log.String())
	}
	log.Reset()
	p2, err := Build(context.Background(), false, &log)
	if err != nil || p2 != p1 || log.Len() != 0 {
		t.Fatalf("second Build = %q, %v, log %q; want %q from the first, no build", p2, err, log.String(), p1)
	}
	Cleanup()
	if _, err := os.Stat(p1); !os.IsNotExist(err) {
		t.Errorf("after Cleanup, stat %s: %v", p1, err)
	}
}
