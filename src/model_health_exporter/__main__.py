from model_health_exporter.cli import main

raise SystemExit(main())
