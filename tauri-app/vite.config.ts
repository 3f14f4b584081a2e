import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

// The UI is served three ways: by the Tauri shell (tauri://localhost), by the sidecar itself at
// http://127.0.0.1:PORT/ (sidecar/ui.py), and by `npm run dev` on :5173 (CORS allows it).
export default defineConfig({
  plugins: [react()],
  clearScreen: false,
  server: { port: 5173, strictPort: true, host: '127.0.0.1' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
