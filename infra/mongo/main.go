// Command ferretdb runs a MongoDB-wire-compatible server for the local stack: FerretDB v1
// embedded as a library, on PostgreSQL (one schema per database; the default of the stack) or
// SQLite (one <database>.sqlite file per database).
//
// Usage:
//
//	ferretdb -listen-addr 127.0.0.1:27017 -postgresql-url postgres://user@127.0.0.1:5432/ferretdb [-log-level info]
//	ferretdb -listen-addr 127.0.0.1:27017 -sqlite-dir /path/to/existing/dir [-log-level info]
//	ferretdb -version
//
// Built and started by infra/services/mongo.py (python -m infra up mongo). Embedding FerretDB
// (instead of `go install .../cmd/ferretdb`) avoids the version.txt panic of module builds and
// turns telemetry off for good: ferretdb.New disables and locks it. No debug/metrics HTTP
// listener exists in embedded mode; the only socket is the wire listener. SIGTERM or SIGINT
// closes the listener and client connections, then the SQLite databases, and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const ferretModule = "github.com/FerretDB/FerretDB"

func main() {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "host:port of the MongoDB wire listener")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL backend: URL of an existing database")
	sqliteDir := flag.String("sqlite-dir", "", "SQLite backend: existing directory for the SQLite files")
	pragmas := flag.String("sqlite-pragmas", "", "comma-separated SQLite pragmas for every database, e.g. synchronous(normal)")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	showVersion := flag.Bool("version", false, "print versions and exit")
	flag.Parse()

	if *showVersion {
		fmt.Println(versions())
		return
	}
	if err := run(*listenAddr, *postgresURL, *sqliteDir, *pragmas, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listenAddr, postgresURL, sqliteDir, pragmas, logLevel string) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(quietHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})

	if _, _, err := net.SplitHostPort(listenAddr); err != nil {
		return fmt.Errorf("-listen-addr %q: %w", listenAddr, err)
	}
	config := ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: listenAddr}, Logger: logger}
	switch {
	case postgresURL != "" && sqliteDir != "":
		return errors.New("give -postgresql-url or -sqlite-dir, not both")
	case postgresURL != "":
		config.Handler, config.PostgreSQLURL = "postgresql", postgresURL
	default:
		sqliteURL, err := sqliteURI(sqliteDir, pragmas)
		if err != nil {
			return err
		}
		config.Handler, config.SQLiteURL = "sqlite", sqliteURL
	}

	f, err := ferretdb.New(&config)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	logger.Info("starting", "versions", versions(), "listen", listenAddr, "backend", config.Handler, "pid", os.Getpid())
	if err := f.Run(ctx); err != nil { // returns once ctx is cancelled and everything is closed
		return err
	}
	logger.Info("stopped cleanly")
	return nil
}

// quietHandler demotes per-connection chatter to debug level: "Connection started/stopped",
// and the warning FerretDB logs (header + full response dump) each time a pymongo client
// closes, because FerretDB v1 has no endSessions command. Other failed commands stay warnings.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if chatter(r) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}

func chatter(r slog.Record) bool {
	switch {
	case r.Level > slog.LevelWarn: // errors are never chatter
		return false
	case r.Message == "Connection started", r.Message == "Connection stopped" && r.Level == slog.LevelInfo:
		return true
	case strings.HasPrefix(r.Message, "Response header: "):
		return true // the header line says nothing the message line does not
	default:
		return strings.HasPrefix(r.Message, "Response message:") &&
			strings.Contains(r.Message, "no such command: 'endSessions'")
	}
}

// sqliteURI turns a directory into the "file:/abs/dir/" URI FerretDB wants (trailing slash,
// existing directory), escaping characters that would otherwise be read as query or fragment.
// Each pragma becomes a _pragma query parameter, which FerretDB passes to every connection
// next to its own defaults (busy_timeout, journal_mode(wal), auto_vacuum(none)).
func sqliteURI(dir, pragmas string) (string, error) {
	if dir == "" {
		return "", errors.New("-sqlite-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("-sqlite-dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("-sqlite-dir %s is not a directory", abs)
	}
	query := url.Values{}
	for _, p := range strings.Split(pragmas, ",") {
		if p = strings.TrimSpace(p); p != "" {
			query.Add("_pragma", p)
		}
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs) + "/", RawQuery: query.Encode()}
	return u.String(), nil
}

// versions reports the embedded FerretDB module version (FerretDB's own version.Get() says
// "unknown" when embedded) and the Go toolchain.
func versions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "FerretDB (unknown), " + "no build info"
	}
	ferret := "unknown"
	for _, dep := range bi.Deps {
		if dep.Path == ferretModule {
			ferret = dep.Version
		}
	}
	return fmt.Sprintf("FerretDB %s (embedded, postgresql or sqlite), %s", ferret, bi.GoVersion)
}
