// The dashboard's default port, apart from the server so `train` and `study` can print the hint without loading it.
export const DEFAULT_DASHBOARD_PORT = 8686;
