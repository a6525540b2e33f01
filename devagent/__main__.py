from devagent.cli import main

raise SystemExit(main())
