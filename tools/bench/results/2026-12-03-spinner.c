// Spins with pause on one core for N seconds: does a spinning neighbour slow compute on the other core?
#include <stdlib.h>
#include <time.h>
int main(int argc, char** argv) {
  double secs = argc > 1 ? atof(argv[1]) : 5;
  struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
  for (unsigned long i = 0;; ++i) {
    __builtin_ia32_pause();
    if ((i & 1023) == 0) { clock_gettime(CLOCK_MONOTONIC, &t);
      if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs) break; }
  }
  return 0;
}
