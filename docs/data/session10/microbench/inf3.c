#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 4096
#define C 1024
static float *x,*y,*a,*b; static int mode, nth;
static void* work(void*arg){ long t=(long)arg; int r0=N*t/nth, r1=N*(t+1)/nth;
  for(int r=r0;r<r1;r++){ const float*xr=x+(size_t)r*C; float*yr=y+(size_t)r*C;
    for(int c=0;c<C;c+=4){ __m128 v=_mm_add_ps(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(xr+c),_mm_loadu_ps(a+c)),_mm_loadu_ps(b+c)),_mm_loadu_ps(a+c));
      if(mode==0) _mm_stream_ps(yr+c,v); else _mm_storeu_ps(yr+c,v);} }
  if(mode==0)_mm_sfence(); return 0; }
static double run(){ pthread_t th[2]; double s=now(); for(long k=0;k<nth;k++) pthread_create(&th[k],0,work,(void*)k); for(int k=0;k<nth;k++) pthread_join(th[k],0); return now()-s; }
int main(int argc,char**argv){ x=aligned_alloc(64,(size_t)N*C*4); y=aligned_alloc(64,(size_t)N*C*4); a=aligned_alloc(64,C*4); b=aligned_alloc(64,C*4);
 for(size_t i=0;i<(size_t)N*C;i++){x[i]=i&7;y[i]=0;} for(int i=0;i<C;i++){a[i]=1.1f;b[i]=0.2f;}
 for(int rep=0;rep<4;rep++){ double res[4]; int k=0;
  for(mode=0;mode<2;mode++) for(nth=1;nth<=2;nth++){ double ts[21]; for(int i=0;i<21;i++){ts[i]=run();}
     for(int i=0;i<21;i++)for(int j=i+1;j<21;j++)if(ts[j]<ts[i]){double q=ts[i];ts[i]=ts[j];ts[j]=q;} res[k++]=ts[10]*1e3; }
  printf("SSE: NT 1t %.3f  NT 2t %.3f   cached 1t %.3f  cached 2t %.3f ms\n",res[0],res[1],res[2],res[3]); }
}
