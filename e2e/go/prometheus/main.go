// Command prometheus is a Prometheus server for fairlead's metrics tests, built
// from the module github.com/prometheus/prometheus (v3.16.0): its scrape
// manager, TSDB, PromQL engine and HTTP API v1 (/api/v1/query, /targets, ...),
// wired here because Prometheus' own cmd/prometheus is a main package and
// cannot be imported. Targets come from static_configs only (no service
// discovery); there is no web UI, rule evaluation, alerting or remote write.
//
//	prometheus --config.file=prometheus.yml --storage.tsdb.path=DIR --web.listen-address=127.0.0.1:9090
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/tsdb"
	apiv1 "github.com/prometheus/prometheus/web/api/v1"
)

// The module version this is built from (go.mod pins it).
const version = "3.16.0"

func main() {
	configFile := flag.String("config.file", "prometheus.yml", "Prometheus configuration file (global and scrape_configs with static_configs)")
	dataDir := flag.String("storage.tsdb.path", "data", "TSDB directory")
	listen := flag.String("web.listen-address", "127.0.0.1:9090", "address of the HTTP API")
	flag.Parse()
	logger := promslog.New(&promslog.Config{})
	if err := run(*configFile, *dataDir, *listen, logger); err != nil {
		logger.Error("prometheus failed", "err", err)
		os.Exit(1)
	}
}

func run(configFile, dataDir, listen string, logger *slog.Logger) error {
	cfg, err := config.LoadFile(configFile, false, logger)
	if err != nil {
		return fmt.Errorf("config %s: %w", configFile, err)
	}
	reg := prometheus.NewRegistry()
	db, err := tsdb.Open(dataDir, logger, reg, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("tsdb %s: %w", dataDir, err)
	}
	defer db.Close()

	scraper, err := scrape.NewManager(&scrape.Options{}, logger, nil, nil, db, reg)
	if err != nil {
		return err
	}
	if err := scraper.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("scrape config: %w", err)
	}
	// Static targets only: each job's static_configs are its target groups.
	targets := make(chan map[string][]*targetgroup.Group, 1)
	groups := map[string][]*targetgroup.Group{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.ServiceDiscoveryConfigs {
			static, ok := sd.(discovery.StaticConfig)
			if !ok {
				return fmt.Errorf("job %s: only static_configs are supported", sc.JobName)
			}
			for i, g := range static {
				g.Source = fmt.Sprintf("%s/%d", sc.JobName, i)
				groups[sc.JobName] = append(groups[sc.JobName], g)
			}
		}
	}
	targets <- groups
	go func() {
		if err := scraper.Run(targets); err != nil {
			logger.Error("scrape manager stopped", "err", err)
		}
	}()
	defer scraper.Stop()

	engine := promql.NewEngine(promql.EngineOpts{
		Logger:        logger,
		Reg:           reg,
		MaxSamples:    50_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
	})
	ready := func(f http.HandlerFunc) http.HandlerFunc { return f }
	api := apiv1.NewAPI(
		engine, db, nil, db,
		func(context.Context) apiv1.ScrapePoolsRetriever { return scraper },
		func(context.Context) apiv1.TargetRetriever { return scraper },
		func(context.Context) apiv1.AlertmanagerRetriever { return noAlertmanagers{} },
		func() config.Config { return *cfg },
		map[string]string{"config.file": configFile, "storage.tsdb.path": dataDir},
		apiv1.GlobalURLOptions{ListenAddress: listen, Host: listen, Scheme: "http"},
		ready, adminStats{db}, dataDir,
		false, false, 0,
		logger,
		func(context.Context) apiv1.RulesRetriever { return nil },
		0, 1, 1<<20,
		false, nil,
		func() (apiv1.RuntimeInfo, error) { return apiv1.RuntimeInfo{}, nil },
		&apiv1.PrometheusVersion{Version: version},
		nil, nil,
		reg, reg,
		nil,
		false, nil,
		false, false, false,
		5*time.Minute,
		false, false,
		nil, nil,
		apiv1.OpenAPIOptions{},
		nil,
		false,
		time.Minute,
	)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", router)
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(ln) }()
	logger.Info("prometheus listening", "address", ln.Addr().String(), "version", version)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return server.Shutdown(ctx)
}

type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

// adminStats gives the API the TSDB's statistics (its BlockMetas has no error).
type adminStats struct{ *tsdb.DB }

func (a adminStats) BlockMetas() ([]tsdb.BlockMeta, error) { return a.DB.BlockMetas(), nil }

func (a adminStats) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	return a.Head().Stats(statsByLabelName, limit), nil
}

func (a adminStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}
