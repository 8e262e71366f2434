from salas.cli import main

raise SystemExit(main())
